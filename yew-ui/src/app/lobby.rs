//! Lobby: camera and microphone choice with a live preview and a level meter, the connection
//! choice, and the join button. The identity key is generated while the user looks at it.

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use crate::components::{LevelMeter, SelfTile};
use crate::hooks::{IdentitySlot, JoinChoice, LocalMedia};
use crate::services::transport::Preference;

#[derive(Properties, PartialEq)]
pub struct LobbyProps {
    pub room: AttrValue,
    pub media: LocalMedia,
    pub identity: IdentitySlot,
    pub on_join: Callback<JoinChoice>,
    pub error: Option<String>,
    /// Ask for the meeting password.
    #[prop_or_default]
    pub password: bool,
    /// Offer "Sign in" (OIDC), going there.
    #[prop_or_default]
    pub sign_in: Option<AttrValue>,
    /// Who we are signed in as, if we are.
    #[prop_or_default]
    pub signed_in_as: Option<AttrValue>,
    /// Joining waits for sign-in.
    #[prop_or_default]
    pub sign_in_required: bool,
}

fn select_value(e: &Event) -> String {
    e.target_unchecked_into::<HtmlSelectElement>().value()
}

#[function_component]
pub fn Lobby(props: &LobbyProps) -> Html {
    let name = use_node_ref();
    // What is typed, kept in state: a re-render (the level meter, the camera opening) must not
    // put the initial name back over it.
    let typed = use_state(super::initial_name);
    let on_name = {
        let typed = typed.clone();
        Callback::from(move |e: InputEvent| typed.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let password = use_node_ref();
    let preference =
        use_state(|| Preference::parse(&crate::services::js::query_param("transport").unwrap_or_default()));
    let audio_on = use_state(|| true);
    let video_on = use_state(|| true);
    let media = &props.media;

    let on_camera = {
        let cb = media.choose_camera.clone();
        Callback::from(move |e: Event| cb.emit(select_value(&e)))
    };
    let on_microphone = {
        let cb = media.choose_microphone.clone();
        Callback::from(move |e: Event| cb.emit(select_value(&e)))
    };
    let on_preference = {
        let preference = preference.clone();
        Callback::from(move |e: Event| preference.set(Preference::parse(&select_value(&e))))
    };
    let toggle = |state: &UseStateHandle<bool>| {
        let state = state.clone();
        Callback::from(move |_: MouseEvent| state.set(!*state))
    };
    let join = {
        let (name, password, on_join, preference, audio_on, video_on) = (
            name.clone(),
            password.clone(),
            props.on_join.clone(),
            preference.clone(),
            audio_on.clone(),
            video_on.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let display_name = name.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default().trim().to_owned();
            let password = password.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            on_join.emit(JoinChoice {
                display_name,
                preference: *preference,
                audio_on: *audio_on,
                video_on: *video_on,
                password,
            });
        })
    };
    let ready = media.stream.is_some() && props.identity.fingerprint.is_some() && !props.sign_in_required;
    {
        // A kiosk link (`?kiosk=TOKEN`, a token the server's operator issued for this room) joins
        // as soon as the key is ready; the camera follows when it is open. Any other link waits
        // for a click: a link must not be able to publish someone's camera and microphone.
        let (name, on_join, preference) = (name.clone(), props.on_join.clone(), *preference);
        let kiosk = use_state(|| false);
        {
            let kiosk = kiosk.clone();
            let room = props.room.to_string();
            use_effect_with((), move |_| {
                if let Some(token) = crate::services::js::query_param("kiosk") {
                    wasm_bindgen_futures::spawn_local(async move {
                        match crate::services::api::kiosk_allowed(&room, &token).await {
                            Ok(allowed) => kiosk.set(allowed),
                            Err(e) => web_sys::console::warn_1(&format!("kiosk link not checked: {e}").into()),
                        }
                    });
                }
            });
        }
        let key_ready = props.identity.fingerprint.is_some();
        use_effect_with((key_ready, *kiosk), move |(ready, kiosk)| {
            if *ready && *kiosk {
                let display_name =
                    name.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default().trim().to_owned();
                on_join.emit(JoinChoice {
                    display_name,
                    preference,
                    audio_on: true,
                    video_on: true,
                    password: String::new(),
                });
            }
        });
    }
    html! {
        <main class="page lobby">
            <h1>{ format!("Join {}", props.room) }</h1>
            <div class="lobby-grid">
                <div class="preview">
                    <SelfTile stream={media.stream.clone()} name={(*typed).clone()} audio_on={*audio_on} video_on={*video_on} speaking=false />
                    <LevelMeter level={if *audio_on { media.level } else { 0.0 }} />
                    <div class="toggles">
                        <button type="button" id="lobby-audio" onclick={toggle(&audio_on)}>{ if *audio_on { "Mute" } else { "Unmute" } }</button>
                        <button type="button" id="lobby-video" onclick={toggle(&video_on)}>{ if *video_on { "Camera off" } else { "Camera on" } }</button>
                    </div>
                </div>
                <form class="settings" onsubmit={join}>
                    <label>{"Your name"}<input id="lobby-name" ref={name} value={(*typed).clone()} oninput={on_name} maxlength="64" /></label>
                    if props.password {
                        <label>{"Meeting password"}<input id="meeting-password" ref={password} type="password" autocomplete="off" maxlength="256" /></label>
                    }
                    if let Some(who) = &props.signed_in_as { <p class="hint" id="signed-in-as">{ format!("Signed in as {who}") }</p> }
                    if let Some(url) = &props.sign_in {
                        <p class="sign-in">
                            <a id="sign-in" class="button" href={url.clone()}>{"Sign in"}</a>
                            if props.sign_in_required { <span class="hint">{" This meeting is for signed-in users."}</span> }
                        </p>
                    }
                    <label>{"Camera"}
                        <select id="camera" onchange={on_camera}>
                            { for media.devices.cameras.iter().map(|d| html! { <option value={d.id.clone()} selected={media.camera.as_deref() == Some(d.id.as_str())}>{ &d.label }</option> }) }
                        </select>
                    </label>
                    <label>{"Microphone"}
                        <select id="microphone" onchange={on_microphone}>
                            { for media.devices.microphones.iter().map(|d| html! { <option value={d.id.clone()} selected={media.microphone.as_deref() == Some(d.id.as_str())}>{ &d.label }</option> }) }
                        </select>
                    </label>
                    <label>{"Connection"}
                        <select id="transport" onchange={on_preference}>
                            { for [Preference::Auto, Preference::WebTransport, Preference::WebSocket].into_iter().map(|p| html! {
                                <option value={p.as_str()} selected={*preference == p}>{ match p {
                                    Preference::Auto => "Automatic (WebTransport, else WebSocket)",
                                    Preference::WebTransport => "WebTransport only",
                                    Preference::WebSocket => "WebSocket only",
                                } }</option>
                            }) }
                        </select>
                    </label>
                    <p class="fingerprint-line">{"Your key: "}<code id="lobby-fingerprint">{ props.identity.fingerprint.clone().unwrap_or_else(|| "generating…".into()) }</code>
                        if let Some(ms) = props.identity.millis { <span class="hint">{ format!(" (made in {ms:.0} ms)") }</span> }</p>
                    if let Some(e) = &media.error { <p class="error">{ e }</p> }
                    if let Some(e) = &props.identity.error { <p class="error">{ format!("key generation failed: {e}") }</p> }
                    if let Some(e) = &props.error { <p class="error">{ e }</p> }
                    <button id="join-button" class="primary" type="submit" disabled={!ready}>{"Join now"}</button>
                </form>
            </div>
        </main>
    }
}
