// Boots the real test guests (tests/guests, built by target test-guests)
// with the PVH loader on the KVM machine and checks their serial output
// against the same expectations as the QEMU runs.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "boot/boot.h"
#include "boot/elf_image.h"
#include "machine/machine.h"
#include "test_machine_support.h"

namespace vmm {
namespace {

struct GuestRun {
  RunResult result;
  std::string output;
  double seconds = 0;
  MachineStats stats;
  boot::BootInfo boot;
};

std::string guest_path(const std::string& name) {
  return std::string(RR_BINARY_DIR) + "/guests/" + name + ".elf";
}

#define RR_SKIP_WITHOUT_GUEST(name)                                                  \
  do {                                                                               \
    if (!std::filesystem::exists(guest_path(name)))                                  \
      GTEST_SKIP() << "guest " << guest_path(name) << " missing: build test-guests"; \
  } while (0)

GuestRun boot_guest(const std::string& name, const std::string& cmdline,
                    const std::string& input = "", bool with_input = false) {
  GuestRun run;
  BufferSerialOutput output;
  BufferSerialInput serial_input(input);
  MachineConfig config;
  config.serial_output = &output;
  if (with_input) config.serial_input = &serial_input;
  Machine machine(config);
  boot::BootRequest request;
  request.kernel_path = guest_path(name);
  request.kernel = boot::read_file(request.kernel_path);
  request.cmdline = cmdline;
  // Watchdog: a hung guest fails the test instead of hanging the suite.
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 1200 && !done; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!done) machine.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  run.boot = boot::load_kernel(machine.vcpu(), machine.memory(), request);
  run.result = machine.run();
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  done = true;
  watchdog.join();
  run.output = output.contents();
  run.stats = machine.stats();
  std::printf("guest %s: %.3f s, %llu landmarks, %llu interrupts, %llu async stops\n", name.c_str(),
              run.seconds, static_cast<unsigned long long>(run.stats.landmarks),
              static_cast<unsigned long long>(run.stats.interrupts_delivered),
              static_cast<unsigned long long>(run.stats.asynchronous_stops));
  return run;
}

bool has_line(const std::string& output, const std::string& pattern) {
  return std::regex_search(output, std::regex(pattern, std::regex::multiline));
}

void expect_clean_exit(const GuestRun& run) {
  EXPECT_EQ(run.result.kind, RunResult::Kind::kExitPort) << run.result.message << "\n"
                                                         << run.output;
  EXPECT_EQ(run.result.exit_status, 0) << run.output;
}

TEST(BootGuests, HelloPrintsItsGreeting) {
  RR_SKIP_WITHOUT_KVM();
  RR_SKIP_WITHOUT_GUEST("hello");
  const GuestRun run = boot_guest("hello", "");
  EXPECT_EQ(run.boot.protocol, boot::Protocol::kPvh);
  expect_clean_exit(run);
  EXPECT_TRUE(has_line(run.output, "^Hello from the rr test guest\r?$")) << run.output;
  EXPECT_TRUE(has_line(run.output, "ram_kib=130687")) << "e820 map not seen: " << run.output;
}

TEST(BootGuests, TicksGetsTimerInterrupts) {
  RR_SKIP_WITHOUT_KVM();
  RR_SKIP_WITHOUT_GUEST("ticks");
  const GuestRun run = boot_guest("ticks", "");
  expect_clean_exit(run);
  EXPECT_TRUE(has_line(run.output, "^ticks hash=[0-9a-f]+\r?$")) << run.output;
  EXPECT_GT(run.stats.interrupts_delivered, 10u);
}

TEST(BootGuests, Spin3HashIsTimingIndependent) {
  RR_SKIP_WITHOUT_KVM();
  RR_SKIP_WITHOUT_GUEST("spin3");
  const GuestRun run = boot_guest("spin3", "iters=64");
  expect_clean_exit(run);
  EXPECT_TRUE(has_line(run.output, "^RESULT spin3 status=0 hash=76ae0ffe19a2f711\r?$"))
      << run.output;
}

TEST(BootGuests, DemoReachesItsResult) {
  RR_SKIP_WITHOUT_KVM();
  RR_SKIP_WITHOUT_GUEST("demo");
  const GuestRun run = boot_guest("demo", "work=50");
  expect_clean_exit(run);
  EXPECT_TRUE(has_line(run.output, "^demo: sieve round 8/8 value=198e ")) << run.output;
  EXPECT_TRUE(has_line(run.output, "^RESULT demo status=0 hash=4ba7814b6a176099\r?$"))
      << run.output;
}

TEST(BootGuests, SerialEchoReadsUartInput) {
  RR_SKIP_WITHOUT_KVM();
  RR_SKIP_WITHOUT_GUEST("serial-echo");
  const auto input =
      boot::read_file(std::string(RR_SOURCE_DIR) + "/tests/guests/serial-echo-input.txt");
  const GuestRun run = boot_guest("serial-echo", "", std::string(input.begin(), input.end()), true);
  expect_clean_exit(run);
  EXPECT_TRUE(has_line(run.output, "^ECHO HELLO WORLD\r?$")) << run.output;
  EXPECT_TRUE(has_line(run.output, "^serial-echo: lines=2 count=25 hash=41068e34d4c3bcff\r?$"))
      << run.output;
}

TEST(BootLoader, RejectsTruncatedAndForeignImages) {
  RR_SKIP_WITHOUT_GUEST("hello");
  auto image = boot::read_file(guest_path("hello"));
  ASSERT_TRUE(boot::ElfImage::looks_like_elf(image));
  const boot::ElfImage elf(image, "hello.elf");
  ASSERT_TRUE(elf.pvh_entry().has_value());
  EXPECT_GE(elf.segments().front().physical_address, 0x100000u);
  std::vector<uint8_t> truncated(image.begin(), image.begin() + 100);
  EXPECT_THROW(boot::ElfImage(truncated, "truncated.elf"), librr::FormatError);
  image[18] = 0x28;  // e_machine = ARM
  EXPECT_THROW(boot::ElfImage(image, "arm.elf"), librr::FormatError);
}

TEST(BootLoader, MissingKernelFileNamesThePath) {
  try {
    boot::read_file("/nonexistent/vmlinux");
    FAIL() << "no exception";
  } catch (const librr::SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/vmlinux"), std::string::npos);
  }
}

}  // namespace
}  // namespace vmm
