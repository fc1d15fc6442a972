//! `cargo xtask compose-test`: docker-compose.yaml brought up for real, with podman.
//!
//! On a Docker host the compose file's images come from the Dockerfile and from Docker Hub. Where
//! only Debian's archive answers, this first makes every base image the two files name, under
//! the same names, from Debian's packages: `debian:bookworm-slim` by debootstrap, the NATS and
//! PostgreSQL images from Debian's nats-server and postgresql (`xtask/images/`), and the Rust
//! build image from the machine's own toolchain. An image that is already there (pulled from
//! a registry, or made by an earlier run) is used as it is. Then it builds the project's images
//! from the real Dockerfile, the targets the compose file names, and runs
//! `actix-api/tests/compose.rs`, which brings the stack up with podman-compose and holds calls
//! through it.
//!
//! By default the images take the release build `cargo xtask dist` makes on this machine
//! (`--build-arg DIST=prebuilt`); `--from-source` builds inside the Dockerfile's build stage,
//! as `docker compose build` does.
//!
//! What podman here needs that Docker does not (the runc runtime, ulimits within the sandbox's
//! hard limits, the Docker image format that keeps HEALTHCHECK) is this test's own
//! containers.conf, never the compose file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, dist, root, setup, status, target_dir};

/// podman-compose from PyPI: Debian's (1.0.3) ignores `depends_on` conditions, so NATS would
/// start before its certificate exists.
const COMPOSE_TOOL: [&str; 1] = ["podman-compose==1.6.0"];

/// Processes a container may run: well under any sandbox's hard limit (podman's default asks
/// for more than this machine's sandbox allows).
const NPROC: u64 = 4096;

/// Where the test keeps its settings and scratch files.
fn work_dir() -> PathBuf {
    target_dir().join("compose-test")
}

/// What must be installed; the podman-compose executable.
pub fn prerequisites() -> Result<PathBuf> {
    // netavark, aardvark-dns and iptables: the compose network, where services find each other
    // by name, and the published ports.
    setup::ensure_packages(&["podman", "runc", "netavark", "aardvark-dns", "iptables", "debootstrap"])?;
    setup::ensure_commands(&[("chromium", "chromium")])?;
    let venv = setup::python_tools("compose-venv", &COMPOSE_TOOL)?;
    Ok(venv.join("bin/podman-compose"))
}

/// This test's containers.conf: runc (crun refuses a kernel with hybrid cgroups) and ulimits
/// within this process's own hard limits.
fn containers_conf() -> Result<PathBuf> {
    let dir = work_dir();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let nofile = hard_limit("Max open files")?;
    let nproc = hard_limit("Max processes")?.min(NPROC);
    let conf = dir.join("containers.conf");
    fs::write(
        &conf,
        format!(
            "# Written by cargo xtask compose-test: what podman needs on this machine.\n\
             [containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
             [engine]\nruntime = \"runc\"\n"
        ),
    )
    .with_context(|| format!("writing {}", conf.display()))?;
    Ok(conf)
}

/// This process's hard limit named `name` in /proc/self/limits ("Max open files", say).
fn hard_limit(name: &str) -> Result<u64> {
    let limits = fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let line = limits.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name:?} limit"))?;
    let hard = line[name.len()..].split_whitespace().nth(1).with_context(|| format!("no hard limit in {line:?}"))?;
    Ok(if hard == "unlimited" { u64::MAX } else { hard.parse().with_context(|| format!("{name}: {hard}"))? })
}

/// The environment every podman and podman-compose command of the test runs with.
pub fn podman_env(cmd: &mut Command, conf: &Path) {
    cmd.env("CONTAINERS_CONF", conf).env("BUILDAH_FORMAT", "docker");
}

fn podman(conf: &Path) -> Command {
    let mut cmd = Command::new("podman");
    podman_env(&mut cmd, conf);
    cmd.current_dir(root());
    cmd
}

/// The images the Dockerfile builds from and the compose file runs, as written there.
fn base_images() -> Result<Vec<String>> {
    let dockerfile = fs::read_to_string(root().join("Dockerfile")).context("reading the Dockerfile")?;
    let compose = fs::read_to_string(root().join("docker-compose.yaml")).context("reading docker-compose.yaml")?;
    let mut stages = Vec::new();
    let mut images = Vec::new();
    for line in dockerfile.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["FROM", image, rest @ ..] = words.as_slice() {
            if let ["AS", stage] = rest {
                stages.push(stage.to_string());
            }
            let internal = *image == "scratch" || image.starts_with("${") || stages.iter().any(|s| s == image);
            if !internal && !images.iter().any(|i| i == image) {
                images.push(image.to_string());
            }
        }
    }
    for line in compose.lines() {
        // The project's own images carry ${IMAGE_PREFIX…}; the others are pulled.
        if let Some(image) = line.trim().strip_prefix("image:").map(str::trim)
            && !image.contains("${")
            && !images.iter().any(|i| i == image)
        {
            images.push(image.to_owned());
        }
    }
    Ok(images)
}

/// `name` as podman stores it: Docker Hub's official images live under docker.io/library.
fn full_name(name: &str) -> String {
    match name.split_once('/') {
        Some((registry, _)) if registry.contains('.') => name.to_owned(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    }
}

/// Makes each base image that is missing. The Rust build image only when building from source.
fn base(conf: &Path, from_source: bool) -> Result<()> {
    let images = base_images()?;
    // The Debian base first: the other stand-ins are built on it.
    let mut ordered: Vec<&String> = images.iter().filter(|i| i.starts_with("debian:")).collect();
    ordered.extend(images.iter().filter(|i| !i.starts_with("debian:")));
    for image in ordered {
        let name = full_name(image);
        let repository = image.split(':').next().unwrap_or(image);
        if repository == "rust" && !from_source {
            continue;
        }
        let exists = podman(conf).args(["image", "exists", &name]).status().context("running podman")?.success();
        if exists {
            println!("xtask: base image {name} is here");
            continue;
        }
        let started = Instant::now();
        match repository {
            "debian" => debian(conf, image, &name)?,
            "nats" | "postgres" => {
                let file = root().join(format!("xtask/images/{repository}.Containerfile"));
                status(
                    podman(conf)
                        .args(["build", "--pull=never", "-t", &name, "-f"])
                        .arg(&file)
                        .arg(root().join("xtask/images")),
                )?;
            }
            "rust" => rust(conf, &name)?,
            _ => bail!(
                "{image} (named in the Dockerfile or docker-compose.yaml) cannot be pulled here and has no stand-in"
            ),
        }
        println!("xtask: made {name} in {:.0} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}

/// A Debian image from debootstrap, with the official image's package sources.
fn debian(conf: &Path, image: &str, name: &str) -> Result<()> {
    let release = image.split(':').nth(1).and_then(|t| t.split('-').next()).context("no Debian release in the tag")?;
    let rootfs = work_dir().join("debian-rootfs");
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs)?;
    }
    status(
        Command::new("debootstrap")
            .args(["--variant=minbase", release])
            .arg(&rootfs)
            .arg("http://deb.debian.org/debian"),
    )?;
    fs::remove_file(rootfs.join("etc/apt/sources.list"))?;
    fs::write(
        rootfs.join("etc/apt/sources.list.d/debian.sources"),
        format!(
            "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: {release} {release}-updates\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
             Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: {release}-security\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        ),
    )?;
    status(Command::new("sh").arg("-c").arg(format!(
        "rm -rf {0}/var/cache/apt/archives/*.deb {0}/var/lib/apt/lists/* \
         && tar -C {0} -c . | CONTAINERS_CONF={1} podman import --change 'CMD [\"bash\"]' - {name}",
        rootfs.display(),
        conf.display()
    )))?;
    fs::remove_dir_all(&rootfs)?;
    Ok(())
}

/// The Rust build image: the Debian base with a C toolchain and this machine's own Rust
/// toolchain and trusted certificates (crates.io is reached through the same network).
fn rust(conf: &Path, name: &str) -> Result<()> {
    let context = work_dir().join("rust-image");
    if context.exists() {
        fs::remove_dir_all(&context)?;
    }
    let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
    let rustup = std::env::var_os("RUSTUP_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".rustup"));
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".cargo"));
    let toolchain = String::from_utf8(
        Command::new("rustup").args(["show", "active-toolchain"]).current_dir(&home).output()?.stdout,
    )?;
    let toolchain = toolchain.split_whitespace().next().context("rustup names no active toolchain")?.to_owned();
    fs::create_dir_all(context.join("rustup/toolchains"))?;
    fs::create_dir_all(context.join("cargo/bin"))?;
    fs::create_dir_all(context.join("ca"))?;
    status(
        Command::new("cp")
            .arg("-a")
            .arg(rustup.join("toolchains").join(&toolchain))
            .arg(context.join("rustup/toolchains")),
    )?;
    fs::write(
        context.join("rustup/settings.toml"),
        format!("version = \"12\"\ndefault_toolchain = \"{toolchain}\"\nprofile = \"minimal\"\n"),
    )?;
    for tool in ["rustup", "cargo", "rustc", "rustdoc", "cargo-fmt", "rustfmt"] {
        let from = cargo_home.join("bin").join(tool);
        if from.is_file() {
            fs::copy(&from, context.join("cargo/bin").join(tool))?;
        }
    }
    for entry in fs::read_dir("/usr/local/share/ca-certificates").into_iter().flatten().flatten() {
        fs::copy(entry.path(), context.join("ca").join(entry.file_name()))?;
    }
    fs::copy(root().join("xtask/images/rust.Containerfile"), context.join("Containerfile"))?;
    status(podman(conf).args(["build", "--pull=never", "-t", name]).arg(&context))?;
    fs::remove_dir_all(&context)?;
    Ok(())
}

/// The settings the stack runs with: `.env.example`'s, the three secrets it leaves to the user
/// filled in (new ones each run), free ports, and the address the browsers use (the
/// WebTransport URL's host and certificate name).
fn settings() -> Result<PathBuf> {
    let example = fs::read_to_string(root().join(".env.example")).context("reading .env.example")?;
    let secret = || -> Result<String> {
        let mut bytes = [0u8; 24];
        std::io::Read::read_exact(&mut fs::File::open("/dev/urandom")?, &mut bytes)?;
        // NATS reads its password as a config value: letters and digits, a letter first.
        Ok(format!("n{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()))
    };
    let mut text = String::new();
    for line in example.lines() {
        match line.strip_suffix('=') {
            Some(key @ ("TOKEN_SECRET" | "POSTGRES_PASSWORD" | "NATS_PASSWORD")) => {
                text.push_str(&format!("{key}={}", secret()?))
            }
            _ => text.push_str(line),
        }
        text.push('\n');
    }
    let http_port = testkit::free_port();
    text.push_str(&format!(
        "HTTP_PORT={http_port}\nWEBTRANSPORT_PORT={}\nPUBLIC_HOST=127.0.0.1\nPUBLIC_URL=http://127.0.0.1:{http_port}\n",
        testkit::free_udp_port()
    ));
    let path = work_dir().join("compose.env");
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `cargo xtask compose-test`.
pub fn run(from_source: bool) -> Result<()> {
    test(&prerequisites()?, from_source)
}

/// Makes the images and runs the test with `compose` (podman-compose).
pub fn test(compose: &Path, from_source: bool) -> Result<()> {
    let conf = containers_conf()?;
    let env_file = settings()?;
    let started = Instant::now();
    base(&conf, from_source)?;
    let base_time = started.elapsed();

    let mut build = Command::new(compose);
    podman_env(&mut build, &conf);
    // One image at a time: the services share the Dockerfile's build stage, which the first
    // build leaves in the cache for the others (at once, each would compile everything).
    build
        .current_dir(root())
        .args(["--parallel", "1", "-f", "docker-compose.yaml", "--env-file"])
        .arg(&env_file)
        .args(["--profile", "demo", "build"]);
    if !from_source {
        // The release build goes where the Dockerfile's `prebuilt` stage takes it from.
        dist::build(&root().join("target/dist"))?;
    }
    // Named even when it is the default: buildah (podman 4.3) decides which stages to skip from
    // the build arguments given, not the ARG's default, and would skip the build stage.
    build.args(["--build-arg", if from_source { "DIST=build" } else { "DIST=prebuilt" }]);
    let started = Instant::now();
    status(&mut build)?;
    let build_time = started.elapsed();
    println!(
        "xtask: images ready: base images {:.0} s, the project's images ({}) {:.0} s",
        base_time.as_secs_f64(),
        if from_source { "built from source" } else { "from cargo xtask dist" },
        build_time.as_secs_f64()
    );

    let mut test = cargo();
    podman_env(&mut test, &conf);
    status(
        // `--workspace`, as `cargo xtask test` builds the tests: the same features, nothing rebuilt.
        test.args(["test", "--workspace", "--locked", "--test", "compose", "--", "--ignored", "--nocapture"])
            .env("PODMAN_COMPOSE", compose)
            .env("COMPOSE_SETTINGS", &env_file),
    )
}
