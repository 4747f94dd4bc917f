//! The validator binary: flags and signals in, exit code out; the work is in the library.

// mimalloc: glibc malloc is the top cost of event handling in profiles (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    configsync_core::service::main(configsync_validator::run)
}
