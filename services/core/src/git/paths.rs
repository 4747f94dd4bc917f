//! Grouping changed paths by environment and app (`configs/<env>/<app>/...`).

use std::collections::BTreeMap;

use crate::event::{AppChange, EnvironmentChange};

/// Splits `paths` into the environments and apps they belong to (`configs/<env>/<app>/<file>`)
/// and the rest. Environments, apps and paths come out sorted, so the same commit always gives
/// the same event.
pub fn group_paths<S: AsRef<str>>(paths: &[S]) -> (Vec<EnvironmentChange>, Vec<String>) {
    let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<String>>> = BTreeMap::new();
    let mut other = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let mut parts = path.splitn(4, '/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("configs"), Some(env), Some(app), Some(rest))
                if !env.is_empty() && !app.is_empty() && !rest.is_empty() =>
            {
                grouped
                    .entry(env)
                    .or_default()
                    .entry(app)
                    .or_default()
                    .push(path.to_string());
            }
            _ => other.push(path.to_string()),
        }
    }
    let environments = grouped
        .into_iter()
        .map(|(env, apps)| EnvironmentChange {
            environment: env.to_string(),
            apps: apps
                .into_iter()
                .map(|(app, mut paths)| {
                    paths.sort();
                    AppChange {
                        app: app.to_string(),
                        paths,
                    }
                })
                .collect(),
        })
        .collect();
    other.sort();
    (environments, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Environments with their apps and paths, for comparing in one assertion.
    type Grouped = Vec<(String, Vec<(String, Vec<String>)>)>;

    #[test]
    fn paths_are_grouped_by_environment_and_app() {
        let (envs, other) = group_paths(&[
            "configs/prod/web/deploy.yaml",
            "README.md",
            "configs/dev/web/a.yaml",
            "configs/dev/api/sub/b.yaml",
            "configs/dev/web/z.yaml",
            "configs/dev/loose.yaml",
            "configs/prod",
        ]);
        let shape: Grouped = envs
            .into_iter()
            .map(|e| {
                (
                    e.environment,
                    e.apps.into_iter().map(|a| (a.app, a.paths)).collect(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                (
                    "dev".to_string(),
                    vec![
                        (
                            "api".to_string(),
                            vec!["configs/dev/api/sub/b.yaml".to_string()]
                        ),
                        (
                            "web".to_string(),
                            vec![
                                "configs/dev/web/a.yaml".to_string(),
                                "configs/dev/web/z.yaml".to_string()
                            ]
                        ),
                    ]
                ),
                (
                    "prod".to_string(),
                    vec![(
                        "web".to_string(),
                        vec!["configs/prod/web/deploy.yaml".to_string()]
                    )]
                ),
            ]
        );
        assert_eq!(
            other,
            vec!["README.md", "configs/dev/loose.yaml", "configs/prod"]
        );
    }
}
