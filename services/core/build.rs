//! Marks the tests that need `gpg` (the OpenPGP signatures of `access::openpgp`) as ignored
//! when it is not on PATH (always set under CI, where the tests then fail naming what is
//! missing): issue 17.

fn main() {
    configsync_prereq::build::tool("has_gpg", "gpg");
}
