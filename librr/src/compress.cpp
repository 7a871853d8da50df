#include "librr/compress.h"

#include <zstd.h>

#include <memory>
#include <string>

#include "librr/error.h"

namespace librr {
namespace {

void check_declared_size(std::span<const uint8_t> data, uint64_t expected_size) {
  // A single frame that declares its size must declare the expected one:
  // this turns a lying header into an error before a large allocation.
  size_t first_frame = ZSTD_findFrameCompressedSize(data.data(), data.size());
  if (ZSTD_isError(first_frame))
    throw FormatError(std::string("zstd: ") + ZSTD_getErrorName(first_frame));
  if (first_frame == data.size()) {
    unsigned long long declared = ZSTD_getFrameContentSize(data.data(), data.size());
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != expected_size)
      throw FormatError("zstd frame declares " + std::to_string(declared) + " bytes, expected " +
                        std::to_string(expected_size));
  }
}

}  // namespace

std::vector<uint8_t> zstd_compress(std::span<const uint8_t> data, int level) {
  std::vector<uint8_t> out;
  ZstdCompressor(level).compress_append(data, out);
  return out;
}

std::vector<uint8_t> zstd_decompress(std::span<const uint8_t> data, uint64_t expected_size,
                                     uint64_t max_size) {
  if (expected_size > max_size)
    throw FormatError("compressed block claims " + std::to_string(expected_size) +
                      " bytes, more than the limit of " + std::to_string(max_size));
  check_declared_size(data, expected_size);
  std::vector<uint8_t> out(expected_size);
  zstd_decompress_into(data, out);
  return out;
}

void zstd_decompress_into(std::span<const uint8_t> data, std::span<uint8_t> out,
                          std::span<const uint8_t> prefix) {
  const size_t expected_size = out.size();
  check_declared_size(data, expected_size);
  // One decompression context per thread: ZSTD_decompress() would allocate
  // and initialise a fresh ~100 KiB context on every call, which dominated
  // reading logs made of many small chunks.
  struct DCtxDeleter {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  };
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) throw Error("zstd: cannot allocate a decompression context");
  if (!prefix.empty()) {
    const size_t referenced = ZSTD_DCtx_refPrefix(dctx.get(), prefix.data(), prefix.size());
    if (ZSTD_isError(referenced))
      throw Error(std::string("zstd: ") + ZSTD_getErrorName(referenced));
  }
  // The prefix serves this one frame only (zstd forgets it at the frame's start).
  size_t n = ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n)) throw FormatError(std::string("zstd: ") + ZSTD_getErrorName(n));
  if (n != expected_size)
    throw FormatError("zstd block decompressed to " + std::to_string(n) + " bytes, expected " +
                      std::to_string(expected_size));
}

ZstdCompressor::ZstdCompressor(int level) : ctx_(ZSTD_createCCtx()), level_(level) {
  if (!ctx_) throw Error("zstd: cannot allocate a compression context");
}

ZstdCompressor::~ZstdCompressor() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(ctx_)); }

size_t ZstdCompressor::compress_append(std::span<const uint8_t> data, std::vector<uint8_t>& out,
                                       std::span<const uint8_t> prefix) {
  size_t old = out.size();
  out.resize(old + ZSTD_compressBound(data.size()));
  auto* ctx = static_cast<ZSTD_CCtx*>(ctx_);
  size_t n;
  if (prefix.empty()) {
    n = ZSTD_compressCCtx(ctx, out.data() + old, out.size() - old, data.data(), data.size(),
                          level_);
  } else {
    // compress2 applies the sticky level and the prefix (which it then forgets).
    n = ZSTD_CCtx_setParameter(ctx, ZSTD_c_compressionLevel, level_);
    if (!ZSTD_isError(n)) n = ZSTD_CCtx_refPrefix(ctx, prefix.data(), prefix.size());
    if (!ZSTD_isError(n))
      n = ZSTD_compress2(ctx, out.data() + old, out.size() - old, data.data(), data.size());
  }
  if (ZSTD_isError(n)) {
    out.resize(old);
    throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  }
  out.resize(old + n);
  return n;
}

}  // namespace librr
