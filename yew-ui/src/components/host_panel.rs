//! The host's panel: who waits to be let in (admit, reject), who is in (mute, remove),
//! recording (start, stop, the files), and ending the meeting for everyone. Read from the
//! server every second and a half, so it is the same whichever relay anyone is on.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;

use crate::services::api::{self, ParticipantView, RecordingView};
use crate::services::js;

#[derive(Properties, PartialEq)]
pub struct HostPanelProps {
    pub meeting: String,
}

#[function_component]
pub fn HostPanel(props: &HostPanelProps) -> Html {
    let list = use_state(Vec::<ParticipantView>::new);
    let error = use_state(|| None::<String>);
    let confirm_end = use_state(|| false);
    let refresh = use_state(|| 0u32);
    let recording = use_state(|| false);
    let files = use_state(Vec::<RecordingView>::new);
    {
        // Polls until the panel goes.
        let (list, error, id, recording) = (list.clone(), error.clone(), props.meeting.clone(), recording.clone());
        use_effect_with((props.meeting.clone(), *refresh), move |_| {
            let alive = Rc::new(Cell::new(true));
            let running = alive.clone();
            spawn_local(async move {
                while running.get() {
                    match api::participants(&id).await {
                        Ok(now) => {
                            if *list != now {
                                list.set(now);
                            }
                        }
                        Err(e) => error.set(Some(e.message)),
                    }
                    if let Ok(now) = api::recording(&id).await
                        && *recording != now
                    {
                        recording.set(now);
                    }
                    js::sleep(1_500).await;
                }
            });
            move || alive.set(false)
        });
    }
    let act = |user: &str, action: &'static str| {
        let (id, user, error, refresh) = (props.meeting.clone(), user.to_owned(), error.clone(), refresh.clone());
        Callback::from(move |_: MouseEvent| {
            let (id, user, error, refresh) = (id.clone(), user.clone(), error.clone(), refresh.clone());
            spawn_local(async move {
                match api::host_action(&id, &user, action).await {
                    Ok(()) => error.set(None),
                    Err(e) => error.set(Some(e.message)),
                }
                refresh.set(refresh.wrapping_add(1));
            });
        })
    };
    let end = {
        let (id, error, confirm_end) = (props.meeting.clone(), error.clone(), confirm_end.clone());
        Callback::from(move |_: MouseEvent| {
            if !*confirm_end {
                return confirm_end.set(true);
            }
            let (id, error) = (id.clone(), error.clone());
            spawn_local(async move {
                if let Err(e) = api::end_meeting(&id).await {
                    error.set(Some(e.message));
                }
            });
        })
    };
    let toggle_recording = {
        let (id, error, recording, files, refresh) =
            (props.meeting.clone(), error.clone(), recording.clone(), files.clone(), refresh.clone());
        Callback::from(move |_: MouseEvent| {
            let (id, error, recording, files, refresh) =
                (id.clone(), error.clone(), recording.clone(), files.clone(), refresh.clone());
            spawn_local(async move {
                let result = if *recording {
                    api::stop_recording(&id).await.map(|list| files.set(list))
                } else {
                    api::start_recording(&id).await
                };
                match result {
                    Ok(()) => error.set(None),
                    Err(e) => error.set(Some(e.message)),
                }
                refresh.set(refresh.wrapping_add(1));
            });
        })
    };
    let waiting: Vec<&ParticipantView> = list.iter().filter(|p| p.state == "waiting").collect();
    let inside: Vec<&ParticipantView> = list.iter().filter(|p| p.state == "admitted" && !p.is_host).collect();
    html! {
        <div class="host-panel" id="host-panel">
            <h3>{ format!("Waiting room ({})", waiting.len()) }</h3>
            if waiting.is_empty() { <p class="hint">{"Nobody is waiting."}</p> }
            <ul class="waiting">
                { for waiting.iter().map(|p| html! {
                    <li data-user={p.user_id.clone()}>
                        <span class="who">{ &p.display_name }</span>
                        <button class="admit primary" onclick={act(&p.user_id, "admit")}>{"Admit"}</button>
                        <button class="reject" onclick={act(&p.user_id, "reject")}>{"Reject"}</button>
                    </li>
                }) }
            </ul>
            <h3>{"In the meeting"}</h3>
            <ul class="admitted">
                { for inside.iter().map(|p| html! {
                    <li data-user={p.user_id.clone()}>
                        <span class="who">{ &p.display_name }</span>
                        <button class="mute" onclick={act(&p.user_id, "mute")}>{"Mute"}</button>
                        <button class="remove danger" onclick={act(&p.user_id, "remove")}>{"Remove"}</button>
                    </li>
                }) }
            </ul>
            <h3>{"Recording"}</h3>
            <button id="record-toggle" class={if *recording { "danger" } else { "primary" }} onclick={toggle_recording}>
                { if *recording { "Stop recording" } else { "Start recording" } }
            </button>
            if !files.is_empty() {
                <ul class="recordings" id="recordings">
                    { for files.iter().map(|f| html! {
                        <li>
                            <a href={f.url.clone()} download={f.file.clone()}>{ &f.participant }</a>
                            { format!(" {:.0} s, {:.1} MB", f.duration_ms as f64 / 1000.0, f.bytes as f64 / 1e6) }
                        </li>
                    }) }
                </ul>
            }
            <button id="end-meeting" class="danger" onclick={end}>
                { if *confirm_end { "Click again to end for everyone" } else { "End for everyone" } }
            </button>
            if let Some(e) = &*error { <p class="error">{ e }</p> }
        </div>
    }
}
