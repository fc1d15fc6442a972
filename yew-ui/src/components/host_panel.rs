//! The host's panel: who waits to be let in (admit, reject), who is in (mute, remove),
//! recording (start, stop, the files), and ending the meeting for everyone. What it shows and
//! does is `use_host_panel`'s.

use yew::prelude::*;

use crate::hooks::use_host_panel;
use crate::services::api::ParticipantView;

#[derive(Properties, PartialEq)]
pub struct HostPanelProps {
    pub meeting: String,
}

#[function_component]
pub fn HostPanel(props: &HostPanelProps) -> Html {
    let panel = use_host_panel(&props.meeting);
    let act = |user: &str, action: &'static str| {
        let (panel, user) = (panel.clone(), user.to_owned());
        Callback::from(move |_: MouseEvent| panel.act(&user, action))
    };
    let end = {
        let panel = panel.clone();
        Callback::from(move |_: MouseEvent| panel.end())
    };
    let toggle_recording = {
        let panel = panel.clone();
        Callback::from(move |_: MouseEvent| panel.toggle_recording())
    };
    let (list, recording, files, confirm_end, error) =
        (&*panel.people, &*panel.recording, &*panel.files, &*panel.confirm_end, &*panel.error);
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
