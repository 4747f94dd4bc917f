//! The example configuration repository of `configsync demo`: dev, staging and prod, each with
//! a namespace and two apps, made a real Git repository with the `git` CLI.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

/// Runs `git` in `dir` with a fixed identity (the demo's commits are made "by" the demo).
pub fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=ConfigSync Demo",
            "-c",
            "user.email=demo@configsync.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .context("cannot run git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Replicas per environment: the same app, sized differently.
fn replicas(env: &str) -> u32 {
    match env {
        "prod" => 3,
        "staging" => 2,
        _ => 1,
    }
}

fn files(env: &str) -> Vec<(String, String)> {
    let r = replicas(env);
    let mut out = vec![(
        format!("configs/{env}/shop/namespace.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n".to_string(),
    )];
    for (app, image, port) in [
        ("web", "nginx:1.27.3", 80),
        ("api", "ghcr.io/example/shop-api:2.4.1", 8080),
    ] {
        out.push((
            format!("configs/{env}/{app}/config.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-settings\n  namespace: shop\ndata:\n  color: blue\n  environment: {env}\n"),
        ));
        out.push((
            format!("configs/{env}/{app}/deployment.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n  namespace: shop\n  labels:\n    app: {app}\nspec:\n  replicas: {r}\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n    spec:\n      containers:\n      - name: {app}\n        image: {image}\n        ports:\n        - containerPort: {port}\n        envFrom:\n        - configMapRef:\n            name: {app}-settings\n"
            ),
        ));
        out.push((
            format!("configs/{env}/{app}/service.yaml"),
            format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {app}\n  namespace: shop\nspec:\n  selector:\n    app: {app}\n  ports:\n  - port: {port}\n    targetPort: {port}\n"),
        ));
    }
    out
}

/// Writes the example repository into `dir` (which must not exist or be empty) and commits it.
/// Returns the commit SHA.
pub fn create(dir: &Path, environments: &[String]) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    git(dir, &["init", "-q"])?;
    let readme = "# Example configuration repository\n\nManaged by ConfigSync: `configs/<environment>/<app>/` holds plain Kubernetes manifests.\n";
    std::fs::write(dir.join("README.md"), readme)?;
    for env in environments {
        for (path, text) in files(env) {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().expect("files are under configs/"))?;
            std::fs::write(&path, text)?;
        }
    }
    git(dir, &["add", "-A"])?;
    git(
        dir,
        &["commit", "-q", "-m", "Initial configuration of the shop"],
    )?;
    git(dir, &["rev-parse", "HEAD"])
}

/// Replaces `from` by `to` in one file and commits it with `message`. Returns the new SHA.
pub fn change(
    repo: &Path,
    path: &str,
    from: &str,
    to: &str,
    message: &str,
) -> anyhow::Result<String> {
    rewrite(repo, path, &[(from, to)], message)
}

/// Makes each replacement (the first occurrence of each `from`) in one file and commits them
/// together with `message`. Returns the new SHA.
pub fn rewrite(
    repo: &Path,
    path: &str,
    replacements: &[(&str, &str)],
    message: &str,
) -> anyhow::Result<String> {
    let file = repo.join(path);
    let mut text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    for (from, to) in replacements {
        if !text.contains(from) {
            bail!("{path} does not contain {from:?}");
        }
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&file, text)?;
    git(repo, &["commit", "-q", "-am", message])?;
    git(repo, &["rev-parse", "HEAD"])
}

/// Removes one file from the repository and commits that with `message`. Returns the new SHA.
pub fn remove(repo: &Path, path: &str, message: &str) -> anyhow::Result<String> {
    git(repo, &["rm", "-q", path])?;
    git(repo, &["commit", "-q", "-m", message])?;
    git(repo, &["rev-parse", "HEAD"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_environment_gets_a_namespace_and_two_apps_sized_for_it() {
        let dev = files("dev");
        let prod = files("prod");
        assert_eq!(dev.len(), 7);
        assert!(dev.iter().all(|(p, _)| p.starts_with("configs/dev/")));
        assert!(prod.iter().any(|(_, t)| t.contains("replicas: 3")));
        assert!(dev.iter().any(|(_, t)| t.contains("replicas: 1")));
    }
}
