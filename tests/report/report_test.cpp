// `dptrain report`'s page: charts drawn from the records given, escaping,
// base64 against RFC 4648's vectors, errors naming the file and line.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <string>

#include "dptrain/report/report.h"
#include "temp_dir_test.h"

namespace dptrain::report {
namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos;
       at = text.find(what, at + what.size())) {
    ++n;
  }
  return n;
}

TEST(Report, Base64MatchesRfc4648) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\x00\x80", 3)), "/wCA");
}

TEST(Report, EscapesMarkup) {
  EXPECT_EQ(html_escape("<script>a&'b\"</script>"),
            "&lt;script&gt;a&amp;&#39;b&quot;&lt;/script&gt;");
}

TEST(Report, LineChartDrawsEveryFinitePointOfEverySeries) {
  const std::string svg = line_chart("T", "step", "acc",
                                     {{"a", {{0, 0.1}, {10, 0.5}, {20, 0.7}}},
                                      {"b", {{0, 0.2}, {10, std::nan("")}}},
                                      {"empty", {}}});
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(count(svg, "<polyline"), 2u);  // "empty" is left out
  EXPECT_EQ(count(svg, "<circle"), 4u);    // the NaN is not drawn
  EXPECT_NE(svg.find(">a</text>"), std::string::npos);
  EXPECT_EQ(svg.find(">empty</text>"), std::string::npos);
  // Coordinates stay inside the drawing.
  const std::regex number_attr("c[xy]=\"(-?[0-9.]+)\"");
  for (std::sregex_iterator it(svg.begin(), svg.end(), number_attr), end;
       it != end; ++it) {
    const double v = std::stod((*it)[1]);
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 560.0);
  }
  const std::string none = line_chart("T", "x", "y", {{"a", {}}});
  EXPECT_NE(none.find("no data"), std::string::npos);
  EXPECT_EQ(none.find("<polyline"), std::string::npos);
  // A name is escaped where it is shown.
  const std::string hostile = line_chart("<b>", "x", "y", {{"<i>", {{1, 1}}}});
  EXPECT_EQ(hostile.find("<i>"), std::string::npos);
  EXPECT_EQ(hostile.find("<b>"), std::string::npos);
}

TEST(Report, BarChartHasOneBarPerFiniteValue) {
  const std::string svg =
      bar_chart("per class", {"0", "1", "2"}, {"last", "EMA"},
                {{0.5, 0.9, std::nan("")}, {0.4, 1.0, 0.2}});
  EXPECT_EQ(count(svg, "<rect x=") - count(svg, "width=\"10\" height=\"10\""),
            5u);  // legend squares aside
}

class ReportFiles : public test_support::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    const std::string file = path(name);
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }
};

TEST_F(ReportFiles, PageHasTheChartsThePrivacyStatementAndTheImages) {
  ReportInputs in;
  in.metrics = write("run.jsonl",
                     "{\"step\":10,\"epsilon\":0.5,\"test_accuracy\":0.6,"
                     "\"train_loss_nonprivate\":1.2}\n"
                     "{\"step\":20,\"epsilon\":0.8,\"test_accuracy\":0.7,"
                     "\"train_loss_nonprivate\":0.9}\n");
  in.summary =
      write("s.json",
            "{\"epsilon\":0.8,\"delta\":1e-5,\"accountant\":\"rdp\","
            "\"adjacency\":\"add_remove_one_example\",\"sampler\":\"poisson\","
            "\"seeded\":true,\"plan\":{\"privacy_unit\":\"one example\","
            "\"noise_multiplier\":1.1},\"per_class_accuracy\":[0.5,0.9],"
            "\"publish\":\"Safe to publish: the weights.\","
            "\"config\":{\"model\":\"cnn\",\"classes\":[5,7]}}");
  in.images.push_back(write("g.png", std::string("\x89PNG\r\n\x1a\nxyz", 11)));
  const std::string html = render(in);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_EQ(count(html, "<svg"), 5u);  // 4 training charts + per class
  EXPECT_NE(html.find("(&epsilon;, &delta;) = (0.8, 1e-05)"),
            std::string::npos);
  EXPECT_NE(html.find("<td>one example</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>add_remove_one_example</td>"), std::string::npos);
  EXPECT_NE(html.find("NOT fit for a release"), std::string::npos);
  EXPECT_NE(html.find("Safe to publish: the weights."), std::string::npos);
  EXPECT_NE(html.find("train loss (non-private)"), std::string::npos);
  EXPECT_NE(html.find(">5</text>"), std::string::npos);  // original class ids
  EXPECT_NE(html.find("data:image/png;base64," +
                      base64(std::string("\x89PNG\r\n\x1a\nxyz", 11))),
            std::string::npos);
  // Self-contained: no script, nothing fetched.
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("src=\"/"), std::string::npos);
}

TEST_F(ReportFiles, WithoutASummaryThePageSaysTheGuaranteeIsNotShown) {
  ReportInputs in;
  in.metrics = write("run.jsonl", "{\"step\":1,\"epsilon\":0.1}\n");
  const std::string html = render(in);
  EXPECT_NE(html.find("the privacy guarantee of this run is not shown"),
            std::string::npos);
}

TEST_F(ReportFiles, APageWarnsWhatTheAccountantDoesNotCover) {
  ReportInputs in;
  in.metrics = write("run.jsonl", "{\"step\":1,\"epsilon\":0.1}\n");
  in.summary = write("s.json",
                     "{\"epsilon\":1,\"delta\":1e-5,\"sampler\":\"shuffle\","
                     "\"stopped_by_budget\":true}");
  const std::string html = render(in);
  EXPECT_NE(html.find("Sampler shuffle: the accountant"), std::string::npos);
  EXPECT_NE(html.find("The run stopped early"), std::string::npos);
  EXPECT_EQ(html.find("NOT fit for a release"), std::string::npos);
}

TEST_F(ReportFiles, BadInputNamesTheFileAndLine) {
  auto error = [](const ReportInputs& in) {
    try {
      render(in);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ReportInputs in;
  in.metrics = write("bad.jsonl", "{\"step\":1}\n{\"step\":\n");
  EXPECT_NE(error(in).find("metrics '" + in.metrics + "' line 2: not JSON"),
            std::string::npos);
  in.metrics = write("array.jsonl", "[1,2]\n");
  EXPECT_NE(error(in).find("line 1: not a JSON object"), std::string::npos);
  in.metrics = write("nostep.jsonl", "{\"epsilon\":1}\n");
  EXPECT_NE(error(in).find("no record with a \"step\""), std::string::npos);
  in.metrics = path("missing.jsonl");
  EXPECT_NE(error(in).find("cannot be read"), std::string::npos);
  in.metrics = write("ok.jsonl", "{\"step\":1}\n");
  in.summary = write("s.json", "{not json");
  EXPECT_NE(error(in).find("--summary '" + in.summary + "': not JSON"),
            std::string::npos);
  in.summary.clear();
  in.images = {write("x.png", "GIF89a")};
  EXPECT_NE(error(in).find("--image '" + in.images[0] + "': not a PNG"),
            std::string::npos);
}

TEST_F(ReportFiles, WritePageReplacesTheFileWhole) {
  const std::string file = write("r.html", "old");
  write_page(file, "<html>new</html>");
  std::ifstream in(file);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, "<html>new</html>");
  try {
    write_page(path("no/such/dir/r.html"), "x");
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/r.html"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace dptrain::report
