//! Marks the tests that need `git daemon`, `git http-backend` or OpenSSH's `sshd` as ignored
//! when this machine lacks them (always set under CI, where the tests then fail naming what
//! is missing): issue 17.

fn main() {
    configsync_prereq::build::git_daemon("has_git_daemon");
    configsync_prereq::build::git_http_backend("has_git_http_backend");
    configsync_prereq::build::sshd("has_sshd");
}
