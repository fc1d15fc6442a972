//! Participant tiles: a remote peer's canvas (handed to the drawing worker), a shared
//! screen, and our own camera.

use videocall_client::call::VideoStream;
use web_sys::{HtmlVideoElement, MediaStream};
use yew::prelude::*;

use crate::hooks::use_tile_canvas;
use crate::types::room::{Participant, canvas_id};

#[derive(Properties, PartialEq)]
pub struct PeerTileProps {
    pub session: u64,
    pub participant: Participant,
    /// In the large tile because the user pinned them.
    #[prop_or_default]
    pub pinned: bool,
    /// Pin (or unpin) this person.
    pub on_pin: Callback<u64>,
}

#[function_component]
pub fn PeerTile(props: &PeerTileProps) -> Html {
    let p = &props.participant;
    let id = canvas_id(VideoStream::Camera, props.session);
    let canvas = use_tile_canvas(id.clone());
    let class = classes!("tile", p.speaking.then_some("speaking"), (!p.video_on).then_some("camera-off"));
    let on_pin = {
        let (session, on_pin) = (props.session, props.on_pin.clone());
        Callback::from(move |_: MouseEvent| on_pin.emit(session))
    };
    let pin_title = if props.pinned { "unpin" } else { "pin: show large" };
    html! {
        <div {class} data-session={props.session.to_string()} data-frames={p.stats.frames_decoded.to_string()}
             data-pinned={props.pinned.to_string()} data-layer={p.stats.layer.map(|l| l.to_string()).unwrap_or_default()}
             data-audio={p.stats.audio_frames.to_string()} data-key-id={p.key_id.map(|k| k.to_string()).unwrap_or_default()}>
            <canvas ref={canvas} {id} class="video"></canvas>
            if !p.video_on {
                <div class="avatar">{ initials(&p.display_name) }</div>
            }
            <div class="label">
                if !p.audio_on { <span class="badge muted" title="microphone off">{"muted"}</span> }
                <span class="name">{ &p.display_name }</span>
                if p.fingerprint.is_some() { <span class="badge e2ee" title="end-to-end encrypted: keys exchanged">{"E2EE"}</span> }
            </div>
            <button class={classes!("pin", props.pinned.then_some("pinned"))} title={pin_title} onclick={on_pin}>
                { if props.pinned { "Unpin" } else { "Pin" } }
            </button>
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct ScreenTileProps {
    pub session: u64,
    pub name: AttrValue,
    pub frames: u64,
}

#[function_component]
pub fn ScreenTile(props: &ScreenTileProps) -> Html {
    let id = canvas_id(VideoStream::Screen, props.session);
    let canvas = use_tile_canvas(id.clone());
    html! {
        <div class="tile screen" data-screen-session={props.session.to_string()} data-screen-frames={props.frames.to_string()}>
            <canvas ref={canvas} {id} class="video"></canvas>
            <div class="label"><span class="name">{ format!("{}'s screen", props.name) }</span></div>
        </div>
    }
}

#[derive(Properties, PartialEq)]
pub struct SelfTileProps {
    pub stream: Option<MediaStream>,
    pub name: AttrValue,
    pub audio_on: bool,
    pub video_on: bool,
    pub speaking: bool,
}

/// Our own camera, mirrored, from the local stream (no encode or decode).
#[function_component]
pub fn SelfTile(props: &SelfTileProps) -> Html {
    let video = use_node_ref();
    {
        let video = video.clone();
        use_effect_with(props.stream.clone(), move |stream| {
            if let Some(element) = video.cast::<HtmlVideoElement>() {
                element.set_src_object(stream.as_ref());
                let _ = element.play();
            }
        });
    }
    let class =
        classes!("tile", "self", props.speaking.then_some("speaking"), (!props.video_on).then_some("camera-off"));
    html! {
        <div {class}>
            <video ref={video} class="video mirror" autoplay=true muted=true playsinline=true></video>
            if !props.video_on {
                <div class="avatar">{ initials(&props.name) }</div>
            }
            <div class="label">
                if !props.audio_on { <span class="badge muted" title="microphone off">{"muted"}</span> }
                <span class="name">{ format!("{} (you)", props.name) }</span>
            </div>
        </div>
    }
}

fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|w| w.chars().next()).take(2).collect::<String>().to_uppercase()
}
