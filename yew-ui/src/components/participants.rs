//! Who is here, with each key fingerprint to compare out of band. The meeting's host is marked
//! by the user id the relay stamps, not by a name anyone could choose.

use yew::prelude::*;

use crate::types::room::RoomState;

#[derive(Properties, PartialEq)]
pub struct ParticipantListProps {
    pub state: RoomState,
    /// The meeting host's user id (none in an open room).
    #[prop_or_default]
    pub host: Option<String>,
    /// We are the host.
    #[prop_or_default]
    pub i_host: bool,
}

#[function_component]
pub fn ParticipantList(props: &ParticipantListProps) -> Html {
    let s = &props.state;
    html! {
        <div class="participants">
            <h3>{ format!("People ({})", s.participants.len() + 1) }</h3>
            <ul>
                <li class="me">
                    <div class="who">
                        { format!("{} (you)", s.me.display_name) }
                        if props.i_host { <span class="badge host">{"host"}</span> }
                    </div>
                    <code class="fingerprint" id="my-fingerprint">{ &s.me.fingerprint }</code>
                    <div class="key">{ format!("media key #{}", s.me.key_id) }</div>
                </li>
                { for s.participants.iter().map(|(session, p)| html! {
                    <li data-session={session.to_string()}>
                        <div class="who">
                            { &p.display_name }
                            if props.host.as_deref() == Some(p.user.as_str()) { <span class="badge host">{"host"}</span> }
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
