#include "node/core/log.h"

#include <gtest/gtest.h>

namespace pbx::log {
namespace {

TEST(LogTest, ParsesLevels) {
  Level l;
  ASSERT_TRUE(ParseLevel("warn", &l));
  EXPECT_EQ(l, Level::kWarn);
  EXPECT_FALSE(ParseLevel("loud", &l));
}

TEST(LogTest, PerComponentLevelOverridesDefault) {
  SetLevel(Level::kInfo);
  SetLevel(Level::kError, "noisy");
  EXPECT_TRUE(Enabled(Level::kInfo, "store"));
  EXPECT_FALSE(Enabled(Level::kWarn, "noisy"));
  EXPECT_TRUE(Enabled(Level::kError, "noisy"));
  EXPECT_FALSE(Enabled(Level::kDebug, "store"));
}

TEST(LogTest, OneEventIsOneLine) {
  testing::internal::CaptureStderr();
  Write(Level::kWarn, "test", "two\nlines \"quoted\"");
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find('\n'), out.size() - 1);
  EXPECT_NE(out.find("level=warn comp=test msg=\"two\\nlines \\\"quoted\\\"\""), std::string::npos);
}

}  // namespace
}  // namespace pbx::log
