//! Validation throughput: resources per second on one core for parsing plus schema, policy and
//! reference checks, on a generated corpus (`tools/gen-manifests.py`) and on the shared corpus,
//! beside kubernetes-validate (PyPI) on the same files in the same run.
//!
//! `cargo bench -p configsync-validation --bench validate -- [OBJECTS] [BASELINE_OBJECTS]`
//! (defaults 10000 and 1000: kubernetes-validate is slow enough that it gets a sample of the
//! files, and its rate is per resource all the same). The baseline is installed by
//! `tools/install-kubernetes-validate.sh`; without it the baseline is reported as skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use configsync_validation::engine::{Checker, Options};
use configsync_validation::manifests::{self, Limits, Manifest};
use configsync_validation::policy::Policies;
use configsync_validation::references;
use configsync_validation::schema::Schemas;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let objects: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let sample: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let generated = scratch.path().join("generated");
    let status = Command::new("python3")
        .arg(workspace.join("tools/gen-manifests.py"))
        .args(["--seed", "1", "--objects", &objects.to_string(), "--out"])
        .arg(&generated)
        .status()
        .expect("python3 runs the generator");
    assert!(status.success(), "the generator failed");

    println!("# validation throughput (one thread; debug = false, release profile)");
    println!(
        "# machine: {} cores available; kube version {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        Options::default().kube_version
    );
    let checker = Checker::new(Options::default(), &[]).expect("schemas load");
    let baseline = kubernetes_validate();

    let mut corpora = vec![("generated".to_string(), generated.join("manifests"))];
    let shared = workspace.join("../shared/corpus");
    for (name, dir) in [
        ("kube-prometheus", "kube-prometheus/manifests"),
        ("microservices-demo", "microservices-demo/release"),
    ] {
        if shared.join(dir).exists() {
            corpora.push((name.to_string(), shared.join(dir)));
        } else {
            println!(
                "# {name}: skipped, {} is absent",
                shared.join(dir).display()
            );
        }
    }
    println!(
        "| corpus | resources (input) | ConfigSync parse+schema+policy+refs | schema+policy only | kubernetes-validate --strict | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, dir) in corpora {
        let files = read_tree(&dir);
        let (full, checks, resources) = measure(&checker, &files);
        let base = baseline
            .as_ref()
            .map(|exe| run_baseline(exe, &dir, &files, sample));
        let (base_text, ratio) = match base {
            Some(Some(rate)) => (format!("{rate:.0}/s"), format!("{:.0}x", full / rate)),
            Some(None) => ("failed".to_string(), "-".to_string()),
            None => ("not installed".to_string(), "-".to_string()),
        };
        println!("| {name} | {resources} | {full:.0}/s | {checks:.0}/s | {base_text} | {ratio} |");
    }
}

/// Every manifest file under `dir`, relative to it, in path order.
fn read_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable corpus").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if manifests::is_manifest(&path.to_string_lossy()) {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Best of three: (resources/s for the whole run, resources/s for the checks alone, count),
/// and the best time of each stage, printed so a regression shows where it is.
fn measure(checker: &Checker, files: &[(String, Vec<u8>)]) -> (f64, f64, usize) {
    let mut best_full = Duration::MAX;
    let mut best_checks = Duration::MAX;
    let mut stages = [Duration::MAX; 4];
    let mut count = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let loaded = manifests::load(files, Limits::default());
        let parsed = start.elapsed();
        let findings = checker.check(&loaded.manifests, &[] as &[Manifest]);
        let total = start.elapsed();
        std::hint::black_box(findings);
        count = loaded.manifests.len();
        best_full = best_full.min(total);
        best_checks = best_checks.min(total - parsed);

        let options = Options::default();
        let t = Instant::now();
        let mut schemas = Schemas::builtin(options.kube_version).expect("schemas");
        std::hint::black_box(schemas.add_crds(&loaded.manifests));
        for m in &loaded.manifests {
            std::hint::black_box(schemas.check(m, &options.schema));
        }
        let schema = t.elapsed();
        let t = Instant::now();
        let (policies, _) = Policies::new(&[], options.policy_limits);
        std::hint::black_box(policies.evaluate(&loaded.manifests, options.policy_mode));
        let policy = t.elapsed();
        let t = Instant::now();
        std::hint::black_box(references::check(&loaded.manifests, &options.external));
        let refs = t.elapsed();
        for (best, d) in stages.iter_mut().zip([parsed, schema, policy, refs]) {
            *best = (*best).min(d);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "#   stages (best of 3): parse {:.1} ms, schema (incl. compiling the version) {:.1} ms, policy (incl. preparing the engine) {:.1} ms, references {:.1} ms",
        ms(stages[0]),
        ms(stages[1]),
        ms(stages[2]),
        ms(stages[3])
    );
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    (rate(best_full), rate(best_checks), count)
}

/// The kubernetes-validate executable installed by `tools/install-kubernetes-validate.sh`.
fn kubernetes_validate() -> Option<PathBuf> {
    let tools = std::env::var_os("CONFIGSYNC_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/configsync-tools"))
        })?;
    let exe = tools.join("kubernetes-validate/bin/kubernetes-validate");
    if exe.exists() {
        Some(exe)
    } else {
        println!(
            "# baseline: kubernetes-validate is not installed (tools/install-kubernetes-validate.sh)"
        );
        None
    }
}

/// kubernetes-validate on the first files holding about `sample` resources: resources/s.
fn run_baseline(exe: &Path, dir: &Path, files: &[(String, Vec<u8>)], sample: usize) -> Option<f64> {
    let mut chosen = Vec::new();
    let mut resources = 0;
    for (path, bytes) in files {
        if resources >= sample {
            break;
        }
        resources += manifests::load(&[(path.clone(), bytes.clone())], Limits::default())
            .manifests
            .len();
        chosen.push(dir.join(path));
    }
    let version = Options::default().kube_version.to_string();
    let start = Instant::now();
    let out = Command::new(exe)
        .args(["--strict", "--quiet", "--no-warn", "-k"])
        .arg(format!("{}.0", version.trim_start_matches('v')))
        .args(&chosen)
        .output()
        .ok()?;
    let elapsed = start.elapsed();
    // Exit 1 means findings, which the generated corpus has on purpose; anything else failed.
    if !matches!(out.status.code(), Some(0 | 1)) {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    println!(
        "# baseline: kubernetes-validate on {} files, {resources} resources, {:.1} s",
        chosen.len(),
        elapsed.as_secs_f64()
    );
    Some(resources as f64 / elapsed.as_secs_f64())
}
