//! Who is here, with each key fingerprint to compare out of band, and the room safety code that
//! compares them all at once. A changed key is an alarm on the person, accepted only by a click.
//! Key packets refused (what a hostile relay would send) are counted where people look. The
//! meeting's host is marked by the user id the relay stamps, not by a name anyone could choose.

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
    /// The user compared again and accepts this session's new key.
    #[prop_or_default]
    pub on_accept_key: Callback<u64>,
}

#[function_component]
pub fn ParticipantList(props: &ParticipantListProps) -> Html {
    let s = &props.state;
    let refused: u64 = s.refused.values().sum();
    let refused_detail = s.refused.iter().map(|(why, n)| format!("{why} ×{n}")).collect::<Vec<_>>().join(", ");
    html! {
        <div class="participants">
            <h3>{ format!("People ({})", s.participants.len() + 1) }</h3>
            if !s.safety_code.is_empty() {
                <p class="safety-code">{"Room code: "}<code id="safety-code">{ &s.safety_code }</code></p>
            }
            if refused > 0 {
                <p class="alarm" id="refused-keys" title={refused_detail.clone()}>
                    { format!("Refused {refused} key packet{} not from this room's people ({refused_detail})", if refused == 1 { "" } else { "s" }) }
                </p>
            }
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
                            if p.recorder { <span class="badge recorder">{"recording"}</span> }
                            if !p.audio_on { <span class="badge muted">{"muted"}</span> }
                        </div>
                        <code class="fingerprint">{ p.fingerprint.clone().unwrap_or_else(|| "waiting for key…".into()) }</code>
                        if let Some(new) = &p.key_changed {
                            <div class="alarm key-changed">
                                {"Key changed: compare again. New key: "}<code>{ new }</code>
                                <button class="accept-key" onclick={
                                    let (accept, session) = (props.on_accept_key.clone(), *session);
                                    Callback::from(move |_: MouseEvent| accept.emit(session))
                                }>{"Accept new key"}</button>
                            </div>
                        }
                        <div class="key">{ p.key_id.map(|k| format!("media key #{k}")).unwrap_or_default() }</div>
                    </li>
                }) }
            </ul>
            <p class="hint">{"Compare the room code by voice (or each fingerprint): if everyone sees the same, nobody, not even the server, can listen in."}</p>
        </div>
    }
}
