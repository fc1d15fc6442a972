//! The bot's real V4L2 path against real kernel drivers, in CI: Debian's own kernel booted in
//! QEMU (TCG; no KVM needed) with an initramfs holding busybox, the `vivid` virtual camera
//! driver and a statically linked `bot`. Inside, `bot camera --device /dev/video0` captures
//! from vivid, encodes and publishes over QEMU's user network to a server on the host
//! (10.0.2.2); on the host, `bot watch` joins the room and must open 60 well-formed,
//! end-to-end encrypted H.264 frames.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testkit::KillOnDrop;

use crate::{cargo, setup, status, target_dir};

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The newest kernel package (`linux-image-<abi>-amd64`): only that one stays in the archive.
fn kernel_package() -> Result<String> {
    let depends = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: ").filter(|p| p.starts_with("linux-image-")))
        .map(str::to_owned)
        .context("apt-cache names no kernel for linux-image-amd64")
}

/// Downloads and unpacks `package` into `dir/root`; returns (vmlinuz, modules dir).
fn kernel(package: &str, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let unpacked = dir.join("root");
    let release = package.trim_start_matches("linux-image-");
    let vmlinuz = unpacked.join(format!("boot/vmlinuz-{release}"));
    let modules = unpacked.join(format!("lib/modules/{release}"));
    if !vmlinuz.is_file() {
        fs::create_dir_all(dir)?;
        status(Command::new("apt-get").current_dir(dir).args(["download", package]))?;
        let deb = fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .context("the kernel package did not download")?;
        status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
        status(Command::new("/sbin/depmod").arg("-b").arg(&unpacked).arg(release))?;
    }
    Ok((vmlinuz, modules))
}

/// `module` and what it needs, dependencies first, as paths under `modules`.
fn with_dependencies(modules: &Path, module: &str) -> Result<Vec<String>> {
    let dep = fs::read_to_string(modules.join("modules.dep"))?;
    let line = dep
        .lines()
        .find(|l| l.split(':').next().is_some_and(|p| p.ends_with(&format!("/{module}.ko"))))
        .with_context(|| format!("no module {module} in this kernel"))?;
    let (main, deps) = line.split_once(':').context("modules.dep line")?;
    let mut list: Vec<String> = deps.split_whitespace().rev().map(str::to_owned).collect();
    list.push(main.to_owned());
    Ok(list)
}

fn initramfs(dir: &Path, modules: &Path, bot: &Path, port: u16) -> Result<PathBuf> {
    let tree = dir.join("initrd");
    let _ = fs::remove_dir_all(&tree);
    for sub in ["bin", "proc", "sys", "dev", "tmp", "mods"] {
        fs::create_dir_all(tree.join(sub))?;
    }
    fs::copy("/usr/bin/busybox", tree.join("bin/busybox")).context("busybox-static")?;
    status(Command::new("strip").arg("--strip-debug").arg("-o").arg(tree.join("bin/bot")).arg(bot))?;
    let mut order = Vec::new();
    for module in ["virtio_pci", "virtio_net", "vivid"] {
        for path in with_dependencies(modules, module)? {
            let name = Path::new(&path).file_name().context("module name")?.to_string_lossy().into_owned();
            if !order.contains(&name) {
                fs::copy(modules.join(&path), tree.join("mods").join(&name))?;
                order.push(name);
            }
        }
    }
    fs::write(tree.join("mods/order"), order.join("\n"))?;
    let init = format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /mods/order); do insmod /mods/$m || echo "VM: insmod $m failed"; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
/bin/bot devices | sed 's/^/VM: /'
/bin/bot camera --device /dev/video0 --server http://10.0.2.2:{port} --room vm-camera --name VM --width 640 --height 480 --duration 60 &
BOT=$!
sleep 15
echo "VM: unplugging the camera (driver unbound, module unloaded)"
echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind
sleep 1
rmmod vivid && echo "VM: vivid unloaded"
sleep 2
insmod /mods/vivid.ko && echo "VM: vivid reloaded"
wait $BOT
echo "VM: bot exited $?"
poweroff -f
"#
    );
    fs::write(tree.join("init"), init)?;
    status(Command::new("chmod").arg("+x").arg(tree.join("init")))?;
    let image = dir.join("initrd.gz");
    status(
        Command::new("sh")
            .current_dir(&tree)
            .args(["-c", "find . | cpio -o -H newc 2>/dev/null | gzip -1 > ../initrd.gz"]),
    )?;
    Ok(image)
}

pub fn run() -> Result<()> {
    let wanted = ["qemu-system-x86", "busybox-static", "cpio", "kmod"];
    let missing: Vec<&str> = wanted.into_iter().filter(|p| !setup::package_installed(p)).collect();
    if let Err(e) = setup::apt_install(&missing) {
        println!("\n*** xtask: SKIPPING the V4L2 VM test: {e:#} ***\n");
        return Ok(());
    }
    let dir = target_dir().join("vm");
    let package = kernel_package()?;
    let (vmlinuz, modules) = kernel(&package, &dir.join(&package))?;

    // The bot, statically linked: the initramfs has no libc.
    let static_dir = target_dir().join("static");
    status(
        cargo()
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "bot",
                "--target",
                "x86_64-unknown-linux-gnu",
                "--target-dir",
            ])
            .arg(&static_dir),
    )?;
    let bot = static_dir.join("x86_64-unknown-linux-gnu/release/bot");

    let port = testkit::free_port();
    let image = initramfs(&dir, &modules, &bot, port)?;
    let http = format!("http://127.0.0.1:{port}");
    let _server = KillOnDrop(
        Command::new(target_dir().join("debug/actix-api"))
            .env("LISTEN_ADDR", format!("0.0.0.0:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting actix-api (cargo build --workspace --bins first)")?,
    );
    crate::bench::wait_ready(&http)?;
    let mut watcher = KillOnDrop(
        Command::new(target_dir().join("debug/bot"))
            .args(["watch", "--server", &http, "--room", "vm-camera", "--frames", "60", "--timeout", "150"])
            // Frames count only after the unplug's pause: the video must come back.
            .args(["--after-gap-ms", "1500"])
            .spawn()
            .context("starting bot watch")?,
    );
    std::thread::sleep(Duration::from_secs(2));
    let log = dir.join("vm.log");
    println!("xtask: booting {package} in QEMU (TCG) with vivid; console in {}", log.display());
    let started = Instant::now();
    let _vm = KillOnDrop(
        Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", "1024", "-nographic", "-no-reboot", "-kernel"])
            .arg(&vmlinuz)
            .arg("-initrd")
            .arg(&image)
            .args(["-append", "console=ttyS0 quiet panic=-1"])
            .args(["-netdev", "user,id=n", "-device", "virtio-net-pci,netdev=n"])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting qemu-system-x86_64")?,
    );
    let verdict = watcher.0.wait()?;
    let console = fs::read_to_string(&log).unwrap_or_default();
    for line in console.lines().filter(|l| {
        l.contains("VM: ") && !l.contains("VM:   ")
            || l.contains("capturing")
            || l.contains("camera back")
            || l.contains("camera lost")
    }) {
        println!("xtask:   {}", line.trim());
    }
    if !console.contains("VM: /dev/video0: vivid") || !console.contains("YUYV") {
        bail!("bot devices did not list vivid's camera and its formats:\n{console}");
    }
    // Hotplug: the bot stayed in the room and took the camera back within 2 s of its return.
    let back_ms =
        console.lines().find_map(|l| l.split("camera back ").nth(1)?.split(" ms").next()?.trim().parse::<u64>().ok());
    if verdict.success() && !back_ms.is_some_and(|ms| ms < 2_000) {
        bail!("the bot did not take the camera back within 2 s of vivid reloading ({back_ms:?} ms)");
    }
    if !verdict.success() {
        println!("{}", console.chars().rev().take(3000).collect::<String>().chars().rev().collect::<String>());
        bail!("the host did not receive the VM camera's frames ({verdict})");
    }
    println!(
        "xtask: V4L2 VM test passed in {:.0} s (camera back {} ms after vivid reloaded)",
        started.elapsed().as_secs_f64(),
        back_ms.unwrap_or_default()
    );
    Ok(())
}
