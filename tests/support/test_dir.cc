#include "tests/support/test_dir.h"

#include <stdlib.h>

#include <filesystem>

#include "gtest/gtest.h"

namespace webhookd::testing {

TestDir::TestDir() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "webhookd-test-XXXXXX")
          .string();
  char* made = mkdtemp(pattern.data());
  EXPECT_NE(made, nullptr) << "mkdtemp failed";
  path_ = pattern;
}

TestDir::~TestDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TestDir::Sub(const std::string& name) const {
  return path_ + "/" + name;
}

}  // namespace webhookd::testing
