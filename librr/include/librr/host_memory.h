#pragma once
// Which pages of a private anonymous mapping this process actually holds.
// A page it has never touched reads as zeros, but reading it costs a page
// fault (on these nested-virtualisation hosts ~7 us: 0.23 s for 128 MiB), and
// copying it into fresh memory costs two. Code that scans or copies a
// mostly-untouched guest RAM (snapshots, the record/replay memory shadow,
// state digests) asks here first and treats unheld pages as zeros.
#include <cstddef>
#include <optional>
#include <vector>

namespace librr {

// For each 4 KiB page of [base, base + size): true when the page is present
// or swapped out (/proc/self/pagemap). Pages marked false read as zeros.
// nullopt when that cannot be known: the range is not entirely private
// anonymous memory (a file or shared mapping's unheld pages are not zeros),
// `base` or `size` is not page-aligned, or /proc is unreadable. Then every
// page must be read.
std::optional<std::vector<bool>> held_pages(const void* base, size_t size);

inline constexpr size_t kHostPageSize = 4096;

}  // namespace librr
