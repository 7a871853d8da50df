// ISF profiles generated from real kernels' DWARF (the test-guest ELF and the
// cached Linux vmlinux), checked against what the sources and the ELF say,
// and the loader on files in dwarf2json's shape.
#include <fstream>

#include "profile/elf_file.h"
#include "profile/isf_format.h"
#include "profile/profile_store.h"
#include "test_os_support.h"

namespace {

using analyzer::Profile;
using nlohmann::json;
namespace fs = std::filesystem;

fs::path hello_elf() { return os_test::guest_elf("hello"); }

#define REQUIRE_GUEST_ELF()     \
  if (!fs::exists(hello_elf())) \
  GTEST_SKIP() << hello_elf() << " is missing: build the test-guests target first"

TEST(ProfileGenerate, TestGuestTypesMatchTheDocumentedAbi) {
  REQUIRE_GUEST_ELF();
  const Profile& profile = os_test::profile_of(hello_elf());
  EXPECT_EQ(profile.os(), "rr-test-guest");
  EXPECT_FALSE(profile.linux_banner().has_value());
  // schemas/test-guest-abi.md, "Task table".
  EXPECT_EQ(profile.type_size("rr_task"), 384u);
  EXPECT_EQ(profile.type_size("rr_trap_frame"), 176u);
  EXPECT_EQ(profile.type_size("rr_task_table"), 64u + 8 * 384);
  EXPECT_EQ(profile.offset_of("rr_task_table", "program"), 48u);
  EXPECT_EQ(profile.offset_of("rr_task_table", "tasks"), 64u);
  EXPECT_EQ(profile.offset_of("rr_task", "regs"), 56u);
  EXPECT_EQ(profile.offset_of("rr_task", "regs.rip"), 56u + 17 * 8);
  EXPECT_EQ(profile.offset_of("rr_task", "ticks_cpl3"), 232u);
  EXPECT_EQ(profile.offset_of("rr_task", "exit_code"), 264u);
  EXPECT_EQ(profile.offset_of("rr_task", "syscall_count"), 280u);
  EXPECT_EQ(profile.offset_of("rr_task", "wait_arg"), 344u);
  const json syscalls = profile.field("rr_task", "syscall_count").type;
  EXPECT_EQ(syscalls["kind"], "array");
  EXPECT_EQ(syscalls["count"], 16);
  EXPECT_EQ(profile.descriptor_size(syscalls), 64u);
  const json name = profile.field("rr_task", "name").type;
  EXPECT_EQ(name["kind"], "array");
  EXPECT_EQ(name["count"], 16);
  EXPECT_EQ(name["subtype"]["kind"], "base");
  EXPECT_EQ(profile.document()["base_types"]["pointer"]["size"], 8);
  // The symbol address is the ELF symbol table's.
  const analyzer::ElfFile elf(hello_elf());
  const auto table = elf.find_symbol("rr_task_table");
  ASSERT_TRUE(table.has_value());
  EXPECT_EQ(profile.symbol("rr_task_table"), table->address);
  EXPECT_EQ(profile.document()["symbols"]["rr_task_table"]["type"],
            json({{"kind", "struct"}, {"name", "rr_task_table"}}));
  // Assembly labels have no DWARF but still get their address.
  const auto entry = elf.find_symbol("pvh_entry32");
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(profile.symbol("pvh_entry32"), entry->address);
  EXPECT_THROW(profile.symbol("no_such_symbol"), analyzer::ProfileError);
  EXPECT_THROW(profile.offset_of("rr_task", "no_such_field"), analyzer::ProfileError);
}

TEST(ProfileGenerate, WrittenFileLoadsBackIdentical) {
  REQUIRE_GUEST_ELF();
  const fs::path out = fs::temp_directory_path() / ("rr-profile-test-" + std::to_string(getpid()));
  const auto result = os_test::rr_analyze("profile generate --elf " + hello_elf().string() +
                                          " --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("user types"), std::string::npos) << result.output;
  const Profile loaded = Profile::load(out);
  EXPECT_EQ(loaded.document()["user_types"],
            os_test::profile_of(hello_elf()).document()["user_types"]);
  EXPECT_EQ(loaded.document()["metadata"]["format"], "6.2.0");
  const auto show = os_test::rr_analyze("profile show --json " + out.string());
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_EQ(json::parse(show.output)["os"], "rr-test-guest");
  fs::remove(out);
}

TEST(ProfileGenerate, RefusesAFileWithoutDwarf) {
  const auto result = os_test::rr_analyze("profile generate --elf /bin/true --out /dev/null");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.output.find("/bin/true"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("DWARF"), std::string::npos) << result.output;
  const auto not_elf = os_test::rr_analyze("profile generate --elf /etc/hostname --out /dev/null");
  EXPECT_NE(not_elf.exit_code, 0);
  EXPECT_NE(not_elf.output.find("/etc/hostname"), std::string::npos) << not_elf.output;
}

TEST(ProfileGenerate, LinuxVmlinuxHasTheTypesTheModelsNeed) {
  const auto dir = os_test::linux_guest_dir();
  if (!dir) GTEST_SKIP() << "the Linux guest is not built here (examples/linux-guest/build.sh)";
  const Profile& profile = os_test::profile_of(*dir / "vmlinux");
  EXPECT_EQ(profile.os(), "linux");
  const auto banner = profile.linux_banner();
  ASSERT_TRUE(banner.has_value());
  EXPECT_EQ(banner->rfind("Linux version 6.1", 0), 0u) << *banner;
  // The banner is the bytes of linux_banner in the ELF's .rodata.
  const analyzer::ElfFile elf(*dir / "vmlinux");
  const auto symbol = elf.find_symbol("linux_banner");
  ASSERT_TRUE(symbol.has_value());
  const auto bytes = elf.read_at(symbol->address, symbol->size);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(std::string(bytes->begin(), bytes->end()).c_str(), *banner);
  EXPECT_EQ(profile.document()["metadata"]["rr_kvm"]["linux_banner"], *banner);
  for (const char* name : {"init_task", "prb", "init_top_pgt", "init_net", "console_printk"})
    EXPECT_NE(profile.find_symbol(name).value_or(0), 0u) << name;
  EXPECT_EQ(profile.symbol("init_task"), elf.find_symbol("init_task")->address);
  EXPECT_EQ(profile.type_size("list_head"), 16u);
  EXPECT_EQ(profile.descriptor_size(profile.field("task_struct", "comm").type), 16u);
  for (const char* field : {"pid", "tgid", "tasks", "real_parent", "__state", "cred", "mm",
                            "thread_group", "flags", "exit_state"})
    EXPECT_TRUE(profile.find_field("task_struct", field).has_value()) << field;
  EXPECT_EQ(profile.offset_of("list_head", "prev"), 8u);
  // printk_info's level:3 and flags:5 share one byte after facility.
  const json level = profile.field("printk_info", "level").type;
  const json flags = profile.field("printk_info", "flags").type;
  EXPECT_EQ(level["kind"], "bitfield");
  EXPECT_EQ(level["bit_length"], 3);
  EXPECT_EQ(flags["bit_length"], 5);
  EXPECT_EQ(profile.offset_of("printk_info", "level"), profile.offset_of("printk_info", "flags"));
  EXPECT_EQ(level["bit_position"].get<int>(), flags["bit_position"].get<int>() + 5);
  // An anonymous union member is found through it, as in C (struct page).
  EXPECT_TRUE(profile.find_field("page", "flags").has_value());
  EXPECT_TRUE(profile.find_field("page", "lru").has_value());
  EXPECT_EQ(profile.document()["enums"]["pid_type"]["constants"]["PIDTYPE_PID"], 0);
}

// A profile in dwarf2json's own shape (its metadata and banner placement).
json dwarf2json_style_profile(const std::string& banner) {
  const std::vector<uint8_t> bytes(banner.begin(), banner.end());
  return {{"metadata",
           {{"format", "6.2.0"},
            {"producer", {{"name", "dwarf2json"}, {"version", "0.8.0"}}},
            {"linux",
             {{"symbols",
               {{{"kind", "dwarf"},
                 {"name", "vmlinux"},
                 {"hash_type", "sha256"},
                 {"hash_value", "00"}}}}}}}},
          {"base_types",
           {{"int", {{"size", 4}, {"signed", true}, {"kind", "int"}, {"endian", "little"}}},
            {"pointer", {{"size", 8}, {"signed", false}, {"kind", "int"}, {"endian", "little"}}}}},
          {"user_types",
           {{"outer",
             {{"kind", "struct"},
              {"size", 16},
              {"fields",
               {{"a", {{"offset", 0}, {"type", {{"kind", "base"}, {"name", "int"}}}}},
                {"unnamed_field_8",
                 {{"offset", 8},
                  {"anonymous", true},
                  {"type", {{"kind", "union"}, {"name", "unnamed_1"}}}}}}}}},
            {"unnamed_1",
             {{"kind", "union"},
              {"size", 8},
              {"fields",
               {{"b", {{"offset", 0}, {"type", {{"kind", "base"}, {"name", "int"}}}}},
                {"c", {{"offset", 4}, {"type", {{"kind", "base"}, {"name", "int"}}}}}}}}}}},
          {"enums", json::object()},
          {"symbols",
           {{"linux_banner",
             {{"address", 0xffffffff82000000ull},
              {"constant_data", analyzer::base64_encode(bytes)}}}}}};
}

TEST(ProfileLoad, ReadsDwarf2jsonProfiles) {
  const std::string banner = "Linux version 6.1.0-test (gcc) #1\n";
  const Profile profile =
      Profile::from_json(dwarf2json_style_profile(banner + std::string(1, '\0')), "d2j");
  EXPECT_EQ(profile.os(), "linux");
  EXPECT_EQ(profile.linux_banner(), banner);
  EXPECT_EQ(profile.symbol("linux_banner"), 0xffffffff82000000ull);
  EXPECT_EQ(profile.offset_of("outer", "c"), 12u);  // through the anonymous union
  EXPECT_EQ(profile.offset_of("outer", "unnamed_field_8.b"), 8u);
  EXPECT_EQ(profile.type_size("outer"), 16u);
}

TEST(ProfileLoad, RefusesWhatIsNotIsf6) {
  json no_types = dwarf2json_style_profile("x");
  no_types.erase("user_types");
  try {
    Profile::from_json(no_types, "broken.json");
    FAIL() << "accepted an ISF without user_types";
  } catch (const librr::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("user_types"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("broken.json"), std::string::npos) << e.what();
  }
  json old = dwarf2json_style_profile("x");
  old["metadata"]["format"] = "4.1.0";
  EXPECT_THROW(Profile::from_json(old, "old.json"), librr::FormatError);
  const fs::path garbage =
      fs::temp_directory_path() / ("rr-profile-garbage-" + std::to_string(getpid()));
  std::ofstream(garbage) << "{ not json";
  EXPECT_THROW(Profile::load(garbage), librr::FormatError);
  fs::remove(garbage);
  EXPECT_THROW(Profile::load("/nonexistent/profile.json"), librr::Error);
}

TEST(ProfileLoad, Base64RoundTrip) {
  const std::vector<uint8_t> bytes = {0, 1, 2, 0xfe, 0xff, 'L', 'i'};
  EXPECT_EQ(analyzer::base64_decode(analyzer::base64_encode(bytes)), bytes);
  EXPECT_EQ(analyzer::base64_encode(std::vector<uint8_t>{'M', 'a', 'n'}), "TWFu");
  EXPECT_THROW(analyzer::base64_decode("@@@"), librr::FormatError);
}

}  // namespace
