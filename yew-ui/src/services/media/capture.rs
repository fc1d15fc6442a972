//! Cameras, microphones and screens: listing them and opening them.

use js_sys::{Array, Object};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DisplayMediaStreamConstraints, MediaDeviceInfo, MediaDeviceKind, MediaStream, MediaStreamConstraints};

use crate::services::js;

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Devices {
    pub cameras: Vec<Device>,
    pub microphones: Vec<Device>,
}

fn media_devices() -> Result<web_sys::MediaDevices, String> {
    js::window().and_then(|w| w.navigator().media_devices()).map_err(|e| js::describe(&e))
}

/// Cameras and microphones (labels are filled in once the user has granted access).
pub async fn devices() -> Result<Devices, String> {
    let list = JsFuture::from(media_devices()?.enumerate_devices().map_err(|e| js::describe(&e))?)
        .await
        .map_err(|e| js::describe(&e))?;
    let mut devices = Devices::default();
    for info in Array::from(&list).iter() {
        let info: MediaDeviceInfo = info.unchecked_into();
        let n = match info.kind() {
            MediaDeviceKind::Videoinput => devices.cameras.len(),
            MediaDeviceKind::Audioinput => devices.microphones.len(),
            _ => continue,
        };
        let label = if info.label().is_empty() { format!("device {}", n + 1) } else { info.label() };
        let device = Device { id: info.device_id(), label };
        match info.kind() {
            MediaDeviceKind::Videoinput => devices.cameras.push(device),
            _ => devices.microphones.push(device),
        }
    }
    Ok(devices)
}

/// The constraint for one device: a given id, or "any".
fn device_constraint(id: Option<&str>, extra: &[(&str, u32)]) -> Object {
    let c = Object::new();
    if let Some(id) = id.filter(|id| !id.is_empty()) {
        let exact = Object::new();
        js::set(&exact, "exact", id);
        js::set(&c, "deviceId", exact);
    }
    for (key, ideal) in extra {
        let v = Object::new();
        js::set(&v, "ideal", *ideal);
        js::set(&c, key, v);
    }
    c
}

/// Opens a camera (at about `width`x`height`) and a microphone.
pub async fn open(
    camera: Option<&str>,
    microphone: Option<&str>,
    width: u32,
    height: u32,
) -> Result<MediaStream, String> {
    let constraints = MediaStreamConstraints::new();
    constraints.set_video(&device_constraint(camera, &[("width", width), ("height", height), ("frameRate", 30)]));
    let audio = device_constraint(microphone, &[]);
    js::set(&audio, "echoCancellation", true);
    js::set(&audio, "noiseSuppression", true);
    constraints.set_audio(&audio);
    let promise = media_devices()?.get_user_media_with_constraints(&constraints).map_err(|e| js::describe(&e))?;
    JsFuture::from(promise)
        .await
        .map(JsCast::unchecked_into)
        .map_err(|e| format!("camera or microphone: {}", js::describe(&e)))
}

/// Asks the user for a screen, window or tab.
pub async fn screen() -> Result<MediaStream, String> {
    let constraints = DisplayMediaStreamConstraints::new();
    let video = Object::new();
    js::set(&video, "frameRate", 15);
    constraints.set_video(&video);
    constraints.set_audio(&false.into());
    let promise = media_devices()?.get_display_media_with_constraints(&constraints).map_err(|e| js::describe(&e))?;
    JsFuture::from(promise).await.map(JsCast::unchecked_into).map_err(|e| format!("screen share: {}", js::describe(&e)))
}

/// Stops every track of `stream` (the camera light goes off).
pub fn stop(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        track.unchecked_into::<web_sys::MediaStreamTrack>().stop();
    }
}
