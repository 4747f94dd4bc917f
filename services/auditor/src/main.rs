//! The auditor binary: flags and signals in, exit code out; the work is in the library.

fn main() -> std::process::ExitCode {
    configsync_core::service::main(configsync_auditor::run)
}
