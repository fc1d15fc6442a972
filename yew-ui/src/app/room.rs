//! A room: the lobby until joined, then the call (tiles, controls, people, chat, diagnostics).
//! A meeting's room asks the server first (password, waiting room): while the host decides,
//! the waiting screen polls for the room token; the host's call shows the host panel.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;
use yew_router::prelude::Link;

use super::Route;
use super::lobby::{JoinChoice, Lobby};
use crate::components::{
    ChatPanel, ConnectionStatus, Controls, Diagnostics, HostPanel, ParticipantList, PeerTile, ScreenTile, SelfTile,
};
use crate::hooks::{RoomHandle, use_identity, use_local_media, use_room};
use crate::services::api::{self, MeetingView, SessionInfo};
use crate::services::call::JoinRequest;
use crate::services::js;
use crate::services::media::audio_out::AudioOut;
use crate::types::room::Connection;

#[derive(Properties, PartialEq)]
pub struct RoomPageProps {
    pub name: String,
    /// The meeting this room is, if it is one.
    #[prop_or_default]
    pub meeting: Option<MeetingView>,
    #[prop_or_default]
    pub session: Option<SessionInfo>,
}

/// Where joining a meeting stands before the call starts.
#[derive(Clone, PartialEq)]
enum Admission {
    Lobby,
    Asking,
    Waiting,
}

/// The call starts with the request that waited for the server's answer.
fn start_pending(pending: &RefCell<Option<JoinRequest>>, room: &RoomHandle, error: &UseStateHandle<Option<String>>) {
    if let Some(request) = pending.borrow_mut().take() {
        if let Err(e) = room.join(request) {
            error.set(Some(e));
        }
    }
}

/// Polls for the room token while the host decides; starts the call once admitted.
fn wait_for_host(
    meeting: String,
    pending: Rc<RefCell<Option<JoinRequest>>>,
    room: RoomHandle,
    admission: UseStateHandle<Admission>,
    error: UseStateHandle<Option<String>>,
    alive: Rc<Cell<bool>>,
) {
    spawn_local(async move {
        loop {
            js::sleep(1_000).await;
            if !alive.get() || pending.borrow().is_none() {
                return;
            }
            match api::meeting_token(&meeting).await {
                Ok(view) if view.token.is_some() => return start_pending(&pending, &room, &error),
                Ok(_) => {}
                Err(f) if f.status == 0 || f.status == 429 || f.status >= 500 => {}
                Err(f) => {
                    pending.borrow_mut().take();
                    admission.set(Admission::Lobby);
                    error.set(Some(f.message));
                    return;
                }
            }
        }
    });
}

#[function_component]
pub fn RoomPage(props: &RoomPageProps) -> Html {
    let identity = use_identity();
    let media = use_local_media();
    let room = use_room(&props.name, &super::saved_name());
    let error = use_state(|| None::<String>);
    let admission = use_state(|| Admission::Lobby);
    let pending = use_mut_ref(|| None::<JoinRequest>);
    // Cleared when the page goes: the waiting room's polling stops.
    let alive_flag = use_memo((), |_| Rc::new(Cell::new(true)));
    {
        let alive_flag = (*alive_flag).clone();
        use_effect_with((), move |_| move || alive_flag.set(false));
    }

    let on_join = {
        let (identity, media, room, error, name) =
            (identity.clone(), media.clone(), room.clone(), error.clone(), props.name.clone());
        let (meeting, admission, pending, alive_flag) =
            (props.meeting.clone(), admission.clone(), pending.clone(), (*alive_flag).clone());
        Callback::from(move |choice: JoinChoice| {
            if videocall_types::DisplayName::parse(&choice.display_name).is_err() {
                return error.set(Some("Type the name others will see (1 to 64 characters).".into()));
            }
            super::save_name(&choice.display_name);
            // Created inside the click, so the browser lets it play.
            let audio_context = match AudioOut::context() {
                Ok(c) => c,
                Err(e) => return error.set(Some(format!("audio: {e}"))),
            };
            let Some(key) = identity.key.borrow_mut().take() else {
                return error.set(Some("Your key is not ready yet.".into()));
            };
            // May still be opening (a kiosk link joins before the camera is open): the effect
            // below hands it over when it is.
            let stream = media.take.emit(());
            let request = JoinRequest {
                room: name.clone(),
                meeting: meeting.as_ref().map(|m| m.id.clone()),
                display_name: choice.display_name.clone(),
                preference: choice.preference,
                identity: key,
                stream,
                audio_on: choice.audio_on,
                video_on: choice.video_on,
                audio_context,
            };
            let Some(meeting) = &meeting else {
                if let Err(e) = room.join(request) {
                    error.set(Some(e));
                }
                return;
            };
            // A meeting: ask the server first; the request waits here meanwhile.
            *pending.borrow_mut() = Some(request);
            admission.set(Admission::Asking);
            let (id, room, error, admission, pending, alive, identity) = (
                meeting.id.clone(),
                room.clone(),
                error.clone(),
                admission.clone(),
                pending.clone(),
                alive_flag.clone(),
                identity.clone(),
            );
            spawn_local(async move {
                match api::join_meeting(&id, &choice.display_name, &choice.password).await {
                    Ok(view) if view.token.is_some() => start_pending(&pending, &room, &error),
                    Ok(_) => {
                        admission.set(Admission::Waiting);
                        wait_for_host(id, pending, room, admission, error, alive);
                    }
                    Err(f) => {
                        // Back to the lobby, key and all, to try again.
                        if let Some(request) = pending.borrow_mut().take() {
                            *identity.key.borrow_mut() = Some(request.identity);
                            if let Some(stream) = request.stream {
                                crate::services::media::capture::stop(&stream);
                            }
                        }
                        admission.set(Admission::Lobby);
                        error.set(Some(f.message));
                    }
                }
            });
        })
    };

    {
        // A stream that opened after joining goes to the call.
        let (room, take) = (room.clone(), media.take.clone());
        use_effect_with(media.stream.clone(), move |stream| {
            if let (Some(call), Some(_)) = (room.call(), stream) {
                if !call.has_stream() {
                    if let Some(s) = take.emit(()) {
                        call.attach_stream(s);
                    }
                }
            }
        });
    }

    if !room.joined() {
        match *admission {
            Admission::Waiting => {
                return html! {
                    <main class="page waiting">
                        <h1 id="waiting-room">{"Waiting for the host to let you in…"}</h1>
                        <p>{ props.meeting.as_ref().map(|m| m.name.clone()).unwrap_or_default() }</p>
                        <p class="hint">{"This page lets you in by itself once the host admits you."}</p>
                    </main>
                };
            }
            Admission::Asking => return html! { <main class="page"><p>{"Joining…"}</p></main> },
            Admission::Lobby => {}
        }
        let session = props.session.as_ref();
        let user = session.and_then(|s| s.user.as_ref());
        let signed_in = user.is_some_and(|u| u.kind == "signed_in");
        let meeting = props.meeting.as_ref();
        let is_host = meeting.is_some_and(|m| m.you_are_host);
        let sign_in = session
            .filter(|s| s.sign_in_available && !signed_in)
            .map(|_| AttrValue::from(format!("/api/v1/auth/login?return_to=/meeting/{}", props.name)));
        let title = meeting.map_or_else(|| props.name.clone(), |m| m.name.clone());
        return html! {
            <Lobby room={title} media={media} identity={identity} on_join={on_join} error={(*error).clone()}
                password={meeting.is_some_and(|m| m.has_password) && !is_host}
                sign_in={sign_in}
                signed_in_as={user.filter(|_| signed_in).map(|u| AttrValue::from(u.display_name.clone()))}
                sign_in_required={meeting.is_some_and(|m| m.signed_in_only) && !signed_in && !is_host} />
        };
    }
    let host_of = props.meeting.as_ref().filter(|m| m.you_are_host).map(|m| m.id.clone());
    let host = props.meeting.as_ref().map(|m| m.host_id.clone());
    html! { <CallView room={room} host_of={host_of} host={host} /> }
}

#[derive(Properties, PartialEq)]
struct CallViewProps {
    room: RoomHandle,
    /// The meeting we host, if we do: the host panel shows.
    host_of: Option<String>,
    /// The meeting's host (a user id, as the relay stamps it), marked in the people list.
    host: Option<String>,
}

#[function_component]
fn CallView(props: &CallViewProps) -> Html {
    let room = &props.room;
    let state = &*room.state;
    let copied = use_state(|| false);
    let stream = room.call().and_then(|c| c.local_stream());

    let intent = |f: fn(&RoomHandle)| {
        let room = room.clone();
        Callback::from(move |()| f(&room))
    };
    let on_copy_link = {
        let copied = copied.clone();
        Callback::from(move |()| {
            if let Some(w) = web_sys::window() {
                let url = w.location().href().unwrap_or_default();
                let _ = w.navigator().clipboard().write_text(&url);
                copied.set(true);
            }
        })
    };
    let on_chat = {
        let room = room.clone();
        Callback::from(move |text: String| room.chat(&text))
    };
    let on_accept_key = {
        let room = room.clone();
        Callback::from(move |session: u64| room.accept_key_change(session))
    };
    if let Connection::Closed { reason } = &state.connection {
        let rejoin = Callback::from(|_: MouseEvent| {
            if let Some(w) = web_sys::window() {
                let _ = w.location().reload();
            }
        });
        return html! {
            <main class="page left">
                <h1>{ reason }</h1>
                <p>{ format!("Room {}", state.room) }</p>
                <button id="rejoin" class="primary" onclick={rejoin}>{"Rejoin"}</button>
                {" "}
                <Link<Route> to={Route::Home}>{"Home"}</Link<Route>>
            </main>
        };
    }
    let count = state.participants.len() + 1 + state.participants.values().filter(|p| p.screen_on).count();
    let columns = (count as f64).sqrt().ceil().max(1.0) as usize;
    html! {
        <main class="call">
            <header>
                <h1>{ &state.room }</h1>
                <ConnectionStatus connection={state.connection.clone()} />
                if state.recording() {
                    <span class="recording-badge" id="recording-badge" title="A recorder is in this room: it holds the keys like anyone here and saves what is sent">{"● Recording"}</span>
                }
                if let Some(notice) = &state.notice { <p class="notice" id="notice">{ notice }</p> }
            </header>
            <div class="stage">
                <section class="grid" style={format!("grid-template-columns: repeat({columns}, 1fr)")}>
                    <SelfTile stream={stream} name={state.me.display_name.clone()} audio_on={state.me.audio_on} video_on={state.me.video_on} speaking={state.me.speaking} />
                    { for state.participants.iter().map(|(session, p)| html! {
                        <PeerTile key={session.to_string()} session={*session} participant={p.clone()} />
                    }) }
                    { for state.participants.iter().filter(|(_, p)| p.screen_on).map(|(session, p)| html! {
                        <ScreenTile key={format!("screen-{session}")} session={*session} name={p.display_name.clone()} frames={p.stats.screen_frames} />
                    }) }
                </section>
                <aside>
                    if let Some(id) = &props.host_of { <HostPanel meeting={id.clone()} /> }
                    <ParticipantList state={state.clone()} host={props.host.clone()} i_host={props.host_of.is_some()} on_accept_key={on_accept_key} />
                    <ChatPanel lines={state.chat.clone()} on_send={on_chat} />
                    <Diagnostics state={state.clone()} />
                </aside>
            </div>
            <Controls audio_on={state.me.audio_on} video_on={state.me.video_on} screen_on={state.me.screen_on}
                on_audio={intent(RoomHandle::toggle_audio)} on_video={intent(RoomHandle::toggle_video)}
                on_screen={intent(RoomHandle::toggle_screen)} on_leave={intent(RoomHandle::leave)}
                on_copy_link={on_copy_link} link_copied={*copied} />
        </main>
    }
}
