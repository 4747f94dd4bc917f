//! Marks the tests that need `git daemon` as ignored when this machine's git lacks it
//! (always set under CI, where the tests then fail naming what is missing): issue 17.

fn main() {
    configsync_prereq::build::git_daemon("has_git_daemon");
}
