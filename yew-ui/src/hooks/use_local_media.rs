//! The lobby's camera and microphone: the device lists, the chosen devices' stream (reopened
//! when the choice changes) and the microphone level.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast;
use web_sys::MediaStream;
use yew::prelude::*;

use crate::services::media::capture::{self, Devices};
use crate::services::media::level::LevelMeter;

#[derive(Clone, PartialEq)]
pub struct LocalMedia {
    pub devices: Devices,
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub stream: Option<MediaStream>,
    pub error: Option<String>,
    pub level: f32,
    pub choose_camera: Callback<String>,
    pub choose_microphone: Callback<String>,
    /// Hands the stream over (to the call): the lobby stops owning it.
    pub take: Callback<(), Option<MediaStream>>,
}

/// Capture size asked of the camera: the top of the bitrate ladder, unless the link says
/// otherwise (`?resolution=640x480`: a slow machine, or the benchmark).
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;

fn capture_size() -> (u32, u32) {
    crate::services::js::query_param("resolution")
        .and_then(|r| {
            let (w, h) = r.split_once('x')?;
            Some((w.parse().ok()?, h.parse().ok()?))
        })
        .filter(|&(w, h): &(u32, u32)| (160..=1920).contains(&w) && (120..=1080).contains(&h))
        .unwrap_or((WIDTH, HEIGHT))
}

#[hook]
pub fn use_local_media() -> LocalMedia {
    let devices = use_state(Devices::default);
    let camera = use_state(|| None::<String>);
    let microphone = use_state(|| None::<String>);
    let stream = use_state(|| None::<MediaStream>);
    let error = use_state(|| None::<String>);
    let level = use_state(|| 0.0f32);
    let handed_over = use_mut_ref(|| false);
    let meter: Rc<RefCell<Option<LevelMeter>>> = use_mut_ref(|| None);

    {
        let (devices, stream, error, meter, handed_over) =
            (devices.clone(), stream.clone(), error.clone(), meter.clone(), handed_over.clone());
        use_effect_with(((*camera).clone(), (*microphone).clone()), move |(cam, mic)| {
            let (cam, mic) = (cam.clone(), mic.clone());
            let opened: Rc<RefCell<Option<MediaStream>>> = Rc::default();
            let keep = opened.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let (width, height) = capture_size();
                // The default devices were opened by index.html while the app loaded.
                let early = match (&cam, &mic) {
                    (None, None) => {
                        crate::services::early::take("media").await.map(|s| s.unchecked_into::<MediaStream>())
                    }
                    _ => None,
                };
                let opened_stream = match early {
                    Some(stream) => Ok(stream),
                    None => capture::open(cam.as_deref(), mic.as_deref(), width, height).await,
                };
                match opened_stream {
                    Ok(s) => {
                        crate::services::js::mark("videocall:camera-ready");
                        *meter.borrow_mut() = LevelMeter::new(&s).ok();
                        *keep.borrow_mut() = Some(s.clone());
                        stream.set(Some(s));
                        error.set(None);
                        if let Ok(list) = capture::devices().await {
                            devices.set(list);
                        }
                    }
                    Err(e) => error.set(Some(e)),
                }
            });
            move || {
                if !*handed_over.borrow() {
                    if let Some(s) = opened.borrow_mut().take() {
                        capture::stop(&s);
                    }
                }
            }
        });
    }
    {
        // The level meter, ten times a second.
        let (level, meter) = (level.clone(), meter.clone());
        use_effect_with((), move |_| {
            let tick = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || {
                if let Some(m) = meter.borrow_mut().as_mut() {
                    level.set(m.level());
                }
            });
            let id = web_sys::window().and_then(|w| {
                use wasm_bindgen::JsCast;
                w.set_interval_with_callback_and_timeout_and_arguments_0(tick.as_ref().unchecked_ref(), 100).ok()
            });
            move || {
                if let (Some(w), Some(id)) = (web_sys::window(), id) {
                    w.clear_interval_with_handle(id);
                }
                drop(tick);
            }
        });
    }

    let choose_camera = {
        let camera = camera.clone();
        Callback::from(move |id: String| camera.set(Some(id)))
    };
    let choose_microphone = {
        let microphone = microphone.clone();
        Callback::from(move |id: String| microphone.set(Some(id)))
    };
    let take = {
        let (stream, meter) = (stream.clone(), meter.clone());
        Callback::from(move |()| {
            *handed_over.borrow_mut() = true;
            meter.borrow_mut().take();
            (*stream).clone()
        })
    };
    LocalMedia {
        devices: (*devices).clone(),
        camera: (*camera).clone(),
        microphone: (*microphone).clone(),
        stream: (*stream).clone(),
        error: (*error).clone(),
        level: *level,
        choose_camera,
        choose_microphone,
        take,
    }
}
