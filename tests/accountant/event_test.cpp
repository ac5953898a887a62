#include "dptrain/accountant/event.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "error_helpers.h"

namespace dptrain::accountant {
namespace {

using dptrain::test_support::expect_error;

TEST(PoissonSampledGaussian, RejectsBadFieldsByNameAndValue) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::pair<PoissonSampledGaussian, const char*> cases[] = {
      {{0.0, 1.0, 1}, "sample_rate must be in (0, 1], got 0"},
      {{1.5, 1.0, 1}, "sample_rate must be in (0, 1], got 1.5"},
      {{nan, 1.0, 1}, "sample_rate must be in (0, 1], got nan"},
      {{0.1, 0.0, 1}, "noise_multiplier must be finite and > 0, got 0"},
      {{0.1, -1.0, 1}, "noise_multiplier must be finite and > 0, got -1"},
      {{0.1, nan, 1}, "noise_multiplier must be finite and > 0, got nan"},
      {{0.1, INFINITY, 1}, "noise_multiplier must be finite and > 0, got inf"},
      {{0.1, 1.0, -3}, "steps must be >= 0, got -3"},
  };
  for (const auto& c : cases) {
    expect_error([&] { validate(c.first); }, c.second);
  }
  EXPECT_NO_THROW(validate({1.0, 1e-3, 0}));
}

TEST(EventHistory, AppendMergesEqualConsecutiveEvents) {
  EventHistory h;
  append_event(h, {0.01, 1.0, 5});
  append_event(h, {0.01, 1.0, 7});
  append_event(h, {0.02, 1.0, 1});
  append_event(h, {0.01, 1.0, 1});
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].steps, 12);
  EXPECT_EQ(total_steps(h), 14);
  expect_error(
      [&] {
        append_event(h, {0.01, 1.0, -1});
      },
      "steps must be >= 0, got -1");
}

TEST(EpochSchedule, RateIsBatchOverDatasetAndStepsRoundUp) {
  const RateAndSteps a = rate_and_steps({60000, 256, 1.0});
  EXPECT_DOUBLE_EQ(a.sample_rate, 256.0 / 60000.0);
  EXPECT_EQ(a.steps, 235);                               // 234.375 rounds up
  EXPECT_EQ(rate_and_steps({1000, 10, 0.1}).steps, 10);  // no spurious 11
  EXPECT_EQ(rate_and_steps({50000, 4096, 0.0}).steps, 0);
}

TEST(EpochSchedule, RejectsBadInput) {
  const std::pair<EpochSchedule, const char*> cases[] = {
      {{0, 1, 1.0}, "dataset_size must be > 0, got 0"},
      {{10, 0, 1.0}, "batch_size must be in [1, dataset_size=10], got 0"},
      {{10, 11, 1.0}, "batch_size must be in [1, dataset_size=10], got 11"},
      {{10, 2, -1.0}, "epochs must be finite and >= 0, got -1"},
  };
  for (const auto& c : cases) {
    expect_error([&] { rate_and_steps(c.first); }, c.second);
  }
}

TEST(EventsJson, RoundTripsExactly) {
  EventHistory h = {
      {256.0 / 60000.0, 1.1, 14062}, {0.1, 0.7, 3}, {1.0, 5.0, 0}};
  const std::string json = to_json(h);
  EXPECT_NE(json.find("\"adjacency\":\"add_remove\""), std::string::npos);
  const EventHistory back = events_from_json(json);
  ASSERT_EQ(back.size(), h.size());
  for (std::size_t i = 0; i < h.size(); ++i) {
    EXPECT_EQ(back[i].sample_rate, h[i].sample_rate);
    EXPECT_EQ(back[i].noise_multiplier, h[i].noise_multiplier);
    EXPECT_EQ(back[i].steps, h[i].steps);
  }
  EXPECT_TRUE(events_from_json(to_json({})).empty());
}

TEST(EventsJson, AcceptsWhitespaceAndKeyOrder) {
  const EventHistory h = events_from_json(
      " { \"events\" : [ { \"steps\" : 3 , \"noise_multiplier\" : 2e0,"
      " \"sample_rate\" : 0.5, \"type\" : \"poisson_sampled_gaussian\" } ],"
      " \"adjacency\":\"add_remove\", \"version\":1,"
      " \"format\":\"dptrain.accountant.events\" } ");
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].steps, 3);
  EXPECT_EQ(h[0].noise_multiplier, 2.0);
}

TEST(EventsJson, RejectsMalformedDocumentsWithReason) {
  const std::string head =
      "{\"format\":\"dptrain.accountant.events\",\"version\":1,"
      "\"adjacency\":\"add_remove\",\"events\":[";
  const std::string ev =
      "{\"type\":\"poisson_sampled_gaussian\",\"sample_rate\":0.1,"
      "\"noise_multiplier\":1,\"steps\":2}";
  expect_error([] { events_from_json(""); },
               "unexpected end of input at offset 0");
  expect_error([] { events_from_json("[]"); }, "the document is not an object");
  expect_error([&] { events_from_json(head + ev); }, "expected ']'");
  expect_error([&] { events_from_json(head + ev + "]} x"); },
               "trailing characters");
  expect_error([] { events_from_json("{\"format\":\"other\"}"); },
               "format must be");
  expect_error(
      [] {
        events_from_json(
            "{\"format\":\"dptrain.accountant.events\",\"version\":2}");
      },
      "unsupported version 2");
  expect_error(
      [] {
        events_from_json(
            "{\"format\":\"dptrain.accountant.events\",\"version\":1}");
      },
      "has no \"adjacency\"");
  expect_error([&] { events_from_json(head + "{\"type\":\"laplace\"}]}"); },
               "events[0] has unknown type \"laplace\"");
  expect_error(
      [&] {
        events_from_json(
            head +
            "{\"type\":\"poisson_sampled_gaussian\",\"sample_rate\":2,"
            "\"noise_multiplier\":1,\"steps\":2}]}");
      },
      "events[0]: sample_rate must be in (0, 1], got 2");
  expect_error(
      [&] {
        events_from_json(
            head +
            "{\"type\":\"poisson_sampled_gaussian\",\"sample_rate\":0.5,"
            "\"noise_multiplier\":1,\"steps\":2.5}]}");
      },
      "steps must be an integer, got 2.5");
  expect_error(
      [&] {
        events_from_json(
            head +
            "{\"type\":\"poisson_sampled_gaussian\",\"sample_rate\":\"x\"}]}");
      },
      "\"sample_rate\" in events[0] has the wrong type");
  expect_error([&] { events_from_json(head + ev + "," + "1e]}"); },
               "malformed number");
  expect_error([] { events_from_json("{\"a\":1,\"a\":2}"); },
               "duplicate key \"a\"");
}

}  // namespace
}  // namespace dptrain::accountant
