//! How a test that needs a missing tool skips: loudly, and never in CI.

/// Says loudly that `test` is skipped for want of a tool, and why; fails
/// instead when `OFFERLAB_REQUIRE_TOOLS=1` (as `.ci/run` sets once it has
/// installed every tool), so that in CI nothing skips unseen.
pub fn skip(test: &str, why: &str) {
    let message = format!("SKIPPED {test}: {why}; `bash .ci/run` installs what it needs and runs it");
    if std::env::var("OFFERLAB_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("{message} (OFFERLAB_REQUIRE_TOOLS=1: no test may skip)");
    }
    eprintln!("{message}");
}
