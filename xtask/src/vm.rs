//! The bot's real V4L2 path against real kernel drivers, in CI: Debian's own kernel booted in
//! QEMU (TCG; no KVM needed) with an initramfs holding busybox, the `vivid` virtual camera, the
//! `vicodec` memory-to-memory encoder (not in Debian's build: compiled here out of tree from
//! `linux-source` against the kernel's headers, loaded with `multiplanar=1` as a Raspberry
//! Pi's encoder is) and the release `bot` with the shared libraries it links. Inside, the bot captures from vivid,
//! encodes and publishes over QEMU's user network to a server on the host (10.0.2.2), where a
//! `bot watch` per room joins and must open end-to-end encrypted, well-formed frames:
//!
//! 1. `vm-yuyv`: YUYV capture, OpenH264 in software (the encoder `auto` falls back to, since
//!    vicodec has no H.264): H.264 frames.
//! 2. `vm-nv12`: NV12 capture, vicodec found through sysfs and `VIDIOC_QUERYCAP`: FWHT frames.
//! 3. `vm-camera`: the preferred format, vicodec, and mid-run the camera unplugged (vivid
//!    unbound and unloaded) and plugged back: 60 FWHT frames must arrive after the pause.
//!
//! Each run ends by draining the encoder (`V4L2_ENC_CMD_STOP`) and must exit 0.

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

/// `vicodec` (and `v4l2-mem2mem` when the kernel lacks it), built out of tree from
/// `linux-source` against `linux-headers-<release>`; the `.ko` files in load order.
fn vicodec(release: &str, modules: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    let series: String = release.split('.').take(2).collect::<Vec<_>>().join(".");
    let source_package = format!("linux-source-{series}");
    let headers_package = format!("linux-headers-{release}");
    setup::ensure_packages(&[&source_package, &headers_package, "make", "xz-utils"])?;
    let need_mem2mem = with_dependencies(modules, "v4l2-mem2mem").is_err();
    let build = dir.join(format!("vicodec-{release}"));
    let mut built = Vec::new();
    if need_mem2mem {
        built.push(build.join("v4l2-mem2mem.ko"));
    }
    built.push(build.join("vicodec.ko"));
    if built.iter().all(|ko| ko.is_file()) {
        return Ok(built);
    }
    let _ = fs::remove_dir_all(&build);
    fs::create_dir_all(&build)?;
    let tree = format!("linux-source-{series}/drivers/media");
    let mut members = vec![format!("{tree}/test-drivers/vicodec/*")];
    if need_mem2mem {
        members.push(format!("{tree}/v4l2-core/v4l2-mem2mem.c"));
    }
    status(
        Command::new("tar")
            .current_dir(&build)
            // vicodec's files land in `vicodec/`, v4l2-mem2mem.c in `build` itself.
            .args(["-xJf", &format!("/usr/src/linux-source-{series}.tar.xz"), "--wildcards", "--strip-components=4"])
            .args(&members),
    )?;
    for file in fs::read_dir(build.join("vicodec"))? {
        let file = file?;
        // Its Makefile names a config symbol Debian leaves unset: the Kbuild below replaces it.
        if file.file_name() != "Makefile" {
            fs::rename(file.path(), build.join(file.file_name()))?;
        }
    }
    let mut kbuild = "obj-m += vicodec.o\nvicodec-objs := vicodec-core.o codec-fwht.o codec-v4l2-fwht.o\n".to_owned();
    if need_mem2mem {
        kbuild.push_str("obj-m += v4l2-mem2mem.o\n");
    }
    fs::write(build.join("Kbuild"), kbuild)?;
    println!(
        "xtask: building vicodec{} out of tree for {release}",
        if need_mem2mem { " and v4l2-mem2mem" } else { "" }
    );
    status(
        Command::new("make")
            .arg("-C")
            .arg(format!("/usr/src/linux-headers-{release}"))
            .arg(format!("M={}", build.display()))
            .args(["-j2", "modules"])
            .stdout(Stdio::null()),
    )?;
    for ko in &built {
        if !ko.is_file() {
            bail!("the out-of-tree build made no {}", ko.display());
        }
    }
    Ok(built)
}

/// The modules a built `.ko` needs from the kernel (`modinfo -F depends`).
fn depends(ko: &Path) -> Result<Vec<String>> {
    let out = output(Command::new("/sbin/modinfo").args(["-F", "depends"]).arg(ko))?;
    Ok(out.trim().split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect())
}

/// The script the VM runs: the three bot runs described at the top.
fn init_script(port: u16) -> String {
    let server = format!("http://10.0.2.2:{port}");
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
while read m args; do insmod /mods/$m $args || echo "VM: insmod $m failed"; done < /mods/order
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
/bin/bot devices | sed 's/^/VM: /'
run() {{ room=$1; shift; /bin/bot camera --device /dev/video0 --server {server} --room $room --name VM "$@"; echo "VM: bot in $room exited $?"; }}
run vm-yuyv --format yuyv --encoder auto --codec h264 --width 320 --height 240 --duration 8
run vm-nv12 --format nv12 --encoder v4l2 --codec fwht --width 640 --height 480 --duration 8
run vm-camera --encoder v4l2 --codec fwht --width 640 --height 480 --duration 35 &
BOT=$!
sleep 15
echo "VM: unplugging the camera (driver unbound, module unloaded)"
echo vivid.0 > /sys/bus/platform/drivers/vivid/unbind
sleep 1
rmmod vivid && echo "VM: vivid unloaded"
sleep 2
insmod /mods/vivid.ko && echo "VM: vivid reloaded"
wait $BOT
poweroff -f
"#
    )
}

/// The shared libraries `binary` loads, the dynamic loader included, as `ldd` finds them.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let listing = output(Command::new("ldd").arg(binary))?;
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)", "/lib64/ld-linux-x86-64.so.2 (0x…)";
    // the vDSO has no file.
    Ok(listing
        .lines()
        .filter_map(|line| {
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

fn initramfs(dir: &Path, modules: &Path, built: &[PathBuf], bot: &Path, port: u16) -> Result<PathBuf> {
    let tree = dir.join("initrd");
    let _ = fs::remove_dir_all(&tree);
    for sub in ["bin", "proc", "sys", "dev", "tmp", "mods"] {
        fs::create_dir_all(tree.join(sub))?;
    }
    fs::copy("/usr/bin/busybox", tree.join("bin/busybox")).context("busybox-static")?;
    status(Command::new("strip").arg("--strip-debug").arg("-o").arg(tree.join("bin/bot")).arg(bot))?;
    for library in shared_libraries(bot)? {
        let inside = tree.join(library.strip_prefix("/").context("a library path")?);
        fs::create_dir_all(inside.parent().context("a library directory")?)?;
        fs::copy(&library, &inside).with_context(|| format!("copying {}", library.display()))?;
    }
    let mut order: Vec<String> = Vec::new();
    let mut wanted: Vec<String> = ["virtio_pci", "virtio_net", "vivid"].map(str::to_owned).to_vec();
    let ours: Vec<String> = built.iter().filter_map(|k| Some(k.file_stem()?.to_string_lossy().into_owned())).collect();
    for ko in built {
        wanted.extend(depends(ko)?.into_iter().filter(|d| !ours.contains(d)));
    }
    for module in &wanted {
        for path in with_dependencies(modules, module)? {
            let name = Path::new(&path).file_name().context("module name")?.to_string_lossy().into_owned();
            if !order.contains(&name) {
                fs::copy(modules.join(&path), tree.join("mods").join(&name))?;
                order.push(name);
            }
        }
    }
    // Ours last, after what they depend on; vicodec multiplanar like a Raspberry Pi's encoder.
    for ko in built {
        let name = ko.file_name().context("module name")?.to_string_lossy().into_owned();
        fs::copy(ko, tree.join("mods").join(&name))?;
        order.push(if name == "vicodec.ko" { format!("{name} multiplanar=1") } else { name });
    }
    fs::write(tree.join("mods/order"), order.join("\n") + "\n")?;
    let init = init_script(port);
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

/// One room's viewer on the host: `bot watch` with `args`.
fn watch(http: &str, room: &str, args: &[&str]) -> Result<KillOnDrop> {
    Ok(KillOnDrop(
        Command::new(target_dir().join("release/bot"))
            .args(["watch", "--server", http, "--room", room, "--timeout", "240"])
            .args(args)
            .spawn()
            .context("starting bot watch")?,
    ))
}

/// QEMU, what the initramfs is made of and what the bot's build needs, installed when missing.
pub fn prerequisites() -> Result<()> {
    setup::ensure_packages(&["qemu-system-x86", "busybox-static", "cpio", "kmod"])?;
    setup::ensure_bot_build()
}

pub fn run() -> Result<()> {
    let dir = target_dir().join("vm");
    let package = kernel_package()?;
    let release = package.trim_start_matches("linux-image-").to_owned();
    let (vmlinuz, modules) = kernel(&package, &dir.join(&package))?;
    let built = vicodec(&release, &modules, &dir)?;

    // Release builds (what `cargo xtask dist` ships, so `cargo xtask test` has just built them):
    // the bot goes into the initramfs with the shared libraries it links; the server and the
    // watchers run on the host.
    status(cargo().args(["build", "--release", "--locked", "-p", "bot", "-p", "actix-api"]))?;
    let bot = target_dir().join("release/bot");

    let port = testkit::free_port();
    let image = initramfs(&dir, &modules, &built, &bot, port)?;
    let http = format!("http://127.0.0.1:{port}");
    let _server = KillOnDrop(
        Command::new(target_dir().join("release/actix-api"))
            .env("LISTEN_ADDR", format!("0.0.0.0:{port}"))
            .env("METRICS_LISTEN_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", "sqlite::memory:")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting actix-api")?,
    );
    crate::bench::wait_ready(&http)?;
    let mut watchers = [
        ("vm-yuyv", watch(&http, "vm-yuyv", &["--codec", "h264", "--frames", "30"])?),
        ("vm-nv12", watch(&http, "vm-nv12", &["--codec", "fwht", "--frames", "30"])?),
        // Frames count only after the unplug's pause: the video must come back.
        ("vm-camera", watch(&http, "vm-camera", &["--codec", "fwht", "--frames", "60", "--after-gap-ms", "1500"])?),
    ];
    std::thread::sleep(Duration::from_secs(2));
    let log = dir.join("vm.log");
    println!("xtask: booting {package} in QEMU (TCG) with vivid and vicodec; console in {}", log.display());
    let started = Instant::now();
    let mut vm = KillOnDrop(
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
    let mut failed = Vec::new();
    for (room, watcher) in &mut watchers {
        let verdict = watcher.0.wait()?;
        if !verdict.success() {
            failed.push(format!("{room}: {verdict}"));
        }
    }
    // The VM powers off once its last run has drained and exited.
    let vm_deadline = Instant::now() + Duration::from_secs(90);
    while vm.0.try_wait()?.is_none() && Instant::now() < vm_deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let console = fs::read_to_string(&log).unwrap_or_default();
    for line in console.lines().filter(|l| {
        l.contains("VM: ") && !l.contains("VM:   ")
            || l.contains("capturing")
            || l.contains("encoding")
            || l.contains("camera back")
            || l.contains("camera lost")
            || l.contains("stopped:")
    }) {
        // From where the message starts: the console's first line carries terminal resets.
        let start = ["VM: ", "bot camera: "].iter().filter_map(|m| line.find(m)).min().unwrap_or(0);
        println!("xtask:   {}", line[start..].trim());
    }
    let tail = || console.chars().rev().take(4000).collect::<String>().chars().rev().collect::<String>();
    if !console.contains("VM: /dev/video0: vivid") || !console.contains("YUYV") {
        bail!("bot devices did not list vivid's camera and its formats:\n{}", tail());
    }
    if !console.contains("encodes FWHT") {
        bail!("bot devices did not find vicodec's encoder:\n{}", tail());
    }
    if !failed.is_empty() {
        println!("{}", tail());
        bail!("the host did not receive the VM camera's frames: {}", failed.join("; "));
    }
    for room in ["vm-yuyv", "vm-nv12", "vm-camera"] {
        if !console.contains(&format!("VM: bot in {room} exited 0")) {
            println!("{}", tail());
            bail!("the bot in {room} did not stop cleanly (drain and exit 0)");
        }
    }
    // Hotplug: the bot stayed in the room and took the camera back within 2 s of its return.
    let back_ms =
        console.lines().find_map(|l| l.split("camera back ").nth(1)?.split(" ms").next()?.trim().parse::<u64>().ok());
    if !back_ms.is_some_and(|ms| ms < 2_000) {
        bail!("the bot did not take the camera back within 2 s of vivid reloading ({back_ms:?} ms)");
    }
    println!(
        "xtask: V4L2 VM test passed in {:.0} s (camera back {} ms after vivid reloaded)",
        started.elapsed().as_secs_f64(),
        back_ms.unwrap_or_default()
    );
    Ok(())
}
