//! The image table: which host executable stands in for a container image.
//!
//! The runner pulls no images. A container runs only if its image's repository name (the last
//! path component, without registry, tag or digest) is in [`TABLE`]:
//!
//! | repository name | runs |
//! |---|---|
//! | `rehearsal-driver`, `rehearsal-operator`, `rehearsal-runner` | `<bin-dir>/<name>`, with `args` (or `command[1..]` + `args` when `command[0]` names the binary) |
//! | `busybox`, `alpine`, `debian`, `ubuntu`, `bash` | `command[0]` looked up on the runner's `PATH` (default `sh`) |
//! | `kubectl` (e.g. `bitnami/kubectl`, `registry.k8s.io/kubectl`) | `command[0]` on `PATH`, default `kubectl` |
//!
//! Anything else is [`ImageError::NotRunnable`].

use std::path::{Path, PathBuf};

/// How an image family turns `command`/`args` into a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// One of the project's own binaries, run from the bin dir.
    Project,
    /// A distribution base image: the command runs through the host, default entrypoint `sh`.
    Shell,
    /// A kubectl image: the command runs through the host, default entrypoint `kubectl`.
    Kubectl,
}

/// Repository names the runner knows, and how each is run.
pub const TABLE: &[(&str, Family)] = &[
    ("rehearsal-driver", Family::Project),
    ("rehearsal-operator", Family::Project),
    ("rehearsal-runner", Family::Project),
    ("busybox", Family::Shell),
    ("alpine", Family::Shell),
    ("debian", Family::Shell),
    ("ubuntu", Family::Shell),
    ("bash", Family::Shell),
    ("kubectl", Family::Kubectl),
];

/// A container's image could not be mapped to a host executable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The image's repository is not in the table.
    #[error(
        "image {image:?} is not runnable by rehearsal-runner: only rehearsal-driver, rehearsal-operator, \
         rehearsal-runner, busybox/alpine/debian/ubuntu/bash and kubectl images are mapped to host executables"
    )]
    NotRunnable {
        /// The image as written in the pod spec.
        image: String,
    },
}

/// The process to start for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Executable: an absolute path, or a bare name looked up on `PATH` when spawned.
    pub program: PathBuf,
    /// Arguments after the program.
    pub args: Vec<String>,
}

/// The repository name of an image: `ghcr.io/org/rehearsal-driver:0.1.0@sha256:…` → `rehearsal-driver`.
pub fn repository_name(image: &str) -> &str {
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    // A tag's colon comes after the last slash; a registry port's colon comes before it.
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split_once(':').map_or(last, |(name, _)| name)
}

/// The table entry for an image, if any.
pub fn family(image: &str) -> Option<(&'static str, Family)> {
    let name = repository_name(image);
    TABLE.iter().copied().find(|(known, _)| *known == name)
}

/// Maps a container's image, `command` and `args` (already `$(VAR)`-expanded) to a process.
pub fn resolve(image: &str, command: &[String], args: &[String], bin_dir: &Path) -> Result<Invocation, ImageError> {
    let Some((name, family)) = family(image) else {
        return Err(ImageError::NotRunnable { image: image.to_owned() });
    };
    let invocation = match family {
        Family::Project => match command.split_first() {
            None => Invocation { program: bin_dir.join(name), args: args.to_vec() },
            Some((first, rest)) => match project_binary(first) {
                // `/rehearsal-driver` in an image is the bin dir's `rehearsal-driver` here.
                Some(binary) => Invocation { program: bin_dir.join(binary), args: concat(rest, args) },
                // Anything else (a debugging shell, say) runs through the host like a base image.
                None => Invocation { program: PathBuf::from(first), args: concat(rest, args) },
            },
        },
        Family::Shell | Family::Kubectl => match (command.split_first(), args.split_first()) {
            (Some((first, rest)), _) => Invocation { program: PathBuf::from(first), args: concat(rest, args) },
            // Base images have no ENTRYPOINT, so `args` alone are the command (Docker semantics).
            (None, Some((first, rest))) if family == Family::Shell => {
                Invocation { program: PathBuf::from(first), args: rest.to_vec() }
            }
            (None, _) => {
                let entrypoint = if family == Family::Shell { "sh" } else { "kubectl" };
                Invocation { program: PathBuf::from(entrypoint), args: args.to_vec() }
            }
        },
    };
    Ok(invocation)
}

/// The project binary a command names, by bare name or by any path ending in that name.
fn project_binary(command: &str) -> Option<&'static str> {
    let base = Path::new(command).file_name()?.to_str()?;
    let names_binary = command == base || command.starts_with('/');
    TABLE
        .iter()
        .find(|(name, family)| *family == Family::Project && *name == base && names_binary)
        .map(|(name, _)| *name)
}

fn concat(a: &[String], b: &[String]) -> Vec<String> {
    a.iter().chain(b).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn repository_name_strips_registry_tag_and_digest() {
        assert_eq!(repository_name("ghcr.io/rehearsal-dev/rehearsal-driver:0.1.0"), "rehearsal-driver");
        assert_eq!(repository_name("rehearsal-driver:dev"), "rehearsal-driver");
        assert_eq!(repository_name("localhost:5000/busybox"), "busybox");
        assert_eq!(repository_name("busybox@sha256:abcd"), "busybox");
        assert_eq!(repository_name("docker.io/library/alpine:3.20@sha256:ff"), "alpine");
        assert_eq!(repository_name("registry.k8s.io/kubectl:v1.36.0"), "kubectl");
    }

    #[test]
    fn project_image_without_command_runs_bin_dir_binary_with_args() {
        let inv = resolve(
            "ghcr.io/rehearsal-dev/rehearsal-driver:0.1.0",
            &[],
            &strings(&["replay", "--speed", "2"]),
            Path::new("/bin-dir"),
        );
        assert_eq!(
            inv,
            Ok(Invocation {
                program: PathBuf::from("/bin-dir/rehearsal-driver"),
                args: strings(&["replay", "--speed", "2"]),
            })
        );
    }

    #[test]
    fn project_image_command_naming_the_binary_maps_to_bin_dir() {
        for command in ["/rehearsal-operator", "rehearsal-operator", "/usr/local/bin/rehearsal-operator"] {
            let inv = resolve(
                "rehearsal-operator:dev",
                &strings(&[command, "--leader-elect"]),
                &strings(&["--metrics-port", "0"]),
                Path::new("/b"),
            );
            assert_eq!(
                inv,
                Ok(Invocation {
                    program: PathBuf::from("/b/rehearsal-operator"),
                    args: strings(&["--leader-elect", "--metrics-port", "0"]),
                }),
                "{command}"
            );
        }
    }

    #[test]
    fn project_image_with_other_command_runs_through_host() {
        let inv = resolve("rehearsal-driver:dev", &strings(&["sh", "-c", "true"]), &[], Path::new("/b"));
        assert_eq!(inv, Ok(Invocation { program: PathBuf::from("sh"), args: strings(&["-c", "true"]) }));
    }

    #[test]
    fn shell_images_run_command_on_host() {
        let inv = resolve("busybox:1.36", &strings(&["sh", "-c"]), &strings(&["echo hi; exit 0"]), Path::new("/b"));
        assert_eq!(inv, Ok(Invocation { program: PathBuf::from("sh"), args: strings(&["-c", "echo hi; exit 0"]) }));
        let inv = resolve("alpine", &[], &strings(&["sleep", "1000"]), Path::new("/b"));
        assert_eq!(inv, Ok(Invocation { program: PathBuf::from("sleep"), args: strings(&["1000"]) }));
        let inv = resolve("debian:bookworm", &[], &[], Path::new("/b"));
        assert_eq!(inv, Ok(Invocation { program: PathBuf::from("sh"), args: vec![] }));
    }

    #[test]
    fn kubectl_images_default_to_kubectl() {
        let inv = resolve("bitnami/kubectl:1.36", &[], &strings(&["get", "pods"]), Path::new("/b"));
        assert_eq!(inv, Ok(Invocation { program: PathBuf::from("kubectl"), args: strings(&["get", "pods"]) }));
    }

    #[test]
    fn unknown_image_is_not_runnable() {
        let err = resolve("nginx:1.27", &[], &[], Path::new("/b"));
        assert_eq!(err, Err(ImageError::NotRunnable { image: "nginx:1.27".into() }));
        let Err(err) = err else { return };
        assert!(err.to_string().contains("nginx:1.27"));
        // A near miss is still not runnable.
        assert!(resolve("ghcr.io/x/rehearsal-driver-extra:1", &[], &[], Path::new("/b")).is_err());
    }
}
