// A temporary directory removed with everything in it when destroyed.

#ifndef WEBHOOKD_TESTS_SUPPORT_TEST_DIR_H_
#define WEBHOOKD_TESTS_SUPPORT_TEST_DIR_H_

#include <string>

namespace webhookd::testing {

class TestDir {
 public:
  TestDir();
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;
  ~TestDir();

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string Sub(const std::string& name) const;

 private:
  std::string path_;
};

}  // namespace webhookd::testing

#endif  // WEBHOOKD_TESTS_SUPPORT_TEST_DIR_H_
