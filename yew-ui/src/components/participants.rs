//! Who is here, with each key fingerprint to compare out of band.

use yew::prelude::*;

use crate::types::room::RoomState;

#[derive(Properties, PartialEq)]
pub struct ParticipantListProps {
    pub state: RoomState,
}

#[function_component]
pub fn ParticipantList(props: &ParticipantListProps) -> Html {
    let s = &props.state;
    html! {
        <div class="participants">
            <h3>{ format!("People ({})", s.participants.len() + 1) }</h3>
            <ul>
                <li class="me">
                    <div class="who">{ format!("{} (you)", s.me.display_name) }</div>
                    <code class="fingerprint" id="my-fingerprint">{ &s.me.fingerprint }</code>
                    <div class="key">{ format!("media key #{}", s.me.key_id) }</div>
                </li>
                { for s.participants.iter().map(|(session, p)| html! {
                    <li data-session={session.to_string()}>
                        <div class="who">
                            { &p.display_name }
                            if !p.audio_on { <span class="badge muted">{"muted"}</span> }
                        </div>
                        <code class="fingerprint">{ p.fingerprint.clone().unwrap_or_else(|| "waiting for key…".into()) }</code>
                        <div class="key">{ p.key_id.map(|k| format!("media key #{k}")).unwrap_or_default() }</div>
                    </li>
                }) }
            </ul>
            <p class="hint">{"Compare fingerprints by voice: if they match, nobody, not even the server, can listen in."}</p>
        </div>
    }
}
