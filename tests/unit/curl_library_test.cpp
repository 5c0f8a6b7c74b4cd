// Unit tests for util/curl_library: libcurl resolved through dlopen, and the
// errors of a library that is missing or is not libcurl.
#include <gtest/gtest.h>

#include <usher/util/curl_library.hpp>

namespace usher::curl {
namespace {

TEST(CurlLibrary, ResolvesEveryFunctionOfLibcurl) {
  const auto opened = open_library(k_soname);
  ASSERT_TRUE(opened) << opened.error().detail;
  EXPECT_NE(opened->easy_init, nullptr);
  EXPECT_NE(opened->easy_setopt, nullptr);
  EXPECT_NE(opened->slist_free_all, nullptr);
  EXPECT_STREQ(opened->easy_strerror(CURLE_OK), "No error");
}

TEST(CurlLibrary, AMissingLibraryIsUnavailableAndNamed) {
  const auto opened = open_library("libusher-no-such-library.so.0");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind, ErrorKind::unavailable);
  EXPECT_NE(opened.error().detail.find("cannot load libusher-no-such-library.so.0"),
            std::string::npos)
      << opened.error().detail;
}

TEST(CurlLibrary, ALibraryWithoutLibcurlsFunctionsIsRefused) {
  // libc is loaded in every process and has no curl_global_init.
  const auto opened = open_library("libc.so.6");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().kind, ErrorKind::unavailable);
  EXPECT_EQ(opened.error().detail, "libc.so.6 has no curl_global_init: it is not libcurl");
}

TEST(CurlLibrary, TheProcessLibraryIsLoadedOnceAndSendsWork) {
  const auto first = library();
  ASSERT_TRUE(first) << first.error().detail;
  const auto second = library();
  ASSERT_TRUE(second);
  EXPECT_EQ(*first, *second);
  const Library &lib = **first;
  CURL *curl = lib.easy_init();
  ASSERT_NE(curl, nullptr);
  // The variadic setopt takes the option's documented type.
  EXPECT_EQ(lib.easy_setopt(curl, CURLOPT_TIMEOUT_MS, 1000L), CURLE_OK);
  EXPECT_EQ(lib.easy_setopt(curl, CURLOPT_URL, "http://127.0.0.1:9/"), CURLE_OK);
  curl_slist *headers = lib.slist_append(nullptr, "Expect:");
  ASSERT_NE(headers, nullptr);
  lib.slist_free_all(headers);
  long status = -1;
  EXPECT_EQ(lib.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status), CURLE_OK);
  EXPECT_EQ(status, 0);
  lib.easy_cleanup(curl);
}

} // namespace
} // namespace usher::curl
