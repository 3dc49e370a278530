// cucumber-js runs the lab scenarios (features/*.feature) with the step definitions compiled by
// tsc into dist/features. Reports (HTML, JSON) go to reports/cucumber/; console logs of the lab
// machines to reports/lab/.
export default {
  paths: ["features/**/*.feature"],
  import: ["dist/features/**/*.js"],
  format: ["progress", "summary", "html:reports/cucumber/report.html", "json:reports/cucumber/report.json"],
  formatOptions: { snippetInterface: "async-await" },
};
