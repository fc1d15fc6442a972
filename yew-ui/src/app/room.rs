//! A room: the lobby until joined, then the call (tiles, controls, people, chat, diagnostics).
//! A meeting's room asks the server first (password, waiting room; `use_admission`): while the
//! host decides, the waiting screen shows; the host's call shows the host panel.

use yew::prelude::*;
use yew_router::prelude::Link;

use super::Route;
use super::lobby::Lobby;
use crate::components::{
    ChatPanel, ConnectionStatus, Controls, Diagnostics, HostPanel, ParticipantList, PeerTile, ScreenTile, SelfTile,
};
use crate::hooks::{
    Admission, JoinChoice, RoomHandle, use_admission, use_identity, use_local_media, use_room, use_width,
};
use crate::services::api::{MeetingView, SessionInfo};
use crate::types::room::{Connection, Participant, RoomAction};
use videocall_client::call::{Mode, Stage};

#[derive(Properties, PartialEq)]
pub struct RoomPageProps {
    pub name: String,
    /// The meeting this room is, if it is one.
    #[prop_or_default]
    pub meeting: Option<MeetingView>,
    #[prop_or_default]
    pub session: Option<SessionInfo>,
}

#[function_component]
pub fn RoomPage(props: &RoomPageProps) -> Html {
    let identity = use_identity();
    let media = use_local_media();
    let room = use_room(&props.name, &super::saved_name());
    let meeting_id = props.meeting.as_ref().map(|m| m.id.clone());
    let admission = use_admission(&props.name, meeting_id, identity.clone(), media.clone(), room.clone());
    let on_join = {
        let admission = admission.clone();
        Callback::from(move |choice: JoinChoice| admission.join(choice))
    };
    let (error, admission) = (admission.error, admission.state);

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
    let on_pin = {
        let room = room.clone();
        Callback::from(move |session: u64| room.state.dispatch(RoomAction::Pin(session)))
    };
    // Who is where, and what that costs: each tile's layer by the width it is drawn at. Hooks
    // come before any early return.
    let sessions: Vec<u64> = state.participants.keys().copied().collect();
    let layout = state.stage.layout(&sessions);
    let screens: Vec<(u64, &Participant)> =
        state.participants.iter().filter(|(_, p)| p.screen_on).map(|(s, p)| (*s, p)).collect();
    let count = layout.tiles.len() + 1 + screens.len();
    // A pinned or speaking person large, the others a strip under them; else a square grid.
    let columns = if layout.main.is_some() { count } else { (count as f64).sqrt().ceil().max(1.0) as usize };
    let (tiles_ref, main_ref) = (use_node_ref(), use_node_ref());
    let (tiles_width, main_width) = (use_width(tiles_ref.clone()), use_width(main_ref.clone()));
    // Less the gaps between tiles, which a layer's choice never hinges on.
    let tile_width = tiles_width / columns as u32;
    {
        let (room, view) = (room.clone(), Stage::view(&layout, tile_width, main_width));
        use_effect_with(view, move |view| {
            if let Some(call) = room.call() {
                call.set_view(view.clone());
            }
        });
    }
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
    let tile = |session: u64| {
        let Some(p) = state.participants.get(&session) else { return html! {} };
        html! {
            <PeerTile key={session.to_string()} session={session} participant={p.clone()}
                pinned={state.stage.pinned() == Some(session)} on_pin={on_pin.clone()} />
        }
    };
    let (mode, next_mode, mode_label) = match state.stage.mode() {
        Mode::Grid => ("grid", Mode::Speaker, "Speaker view"),
        Mode::Speaker => ("speaker", Mode::Grid, "Grid view"),
    };
    let to_page = |page: usize| {
        let room = room.clone();
        Callback::from(move |_: MouseEvent| room.state.dispatch(RoomAction::Page(page)))
    };
    let on_mode = {
        let room = room.clone();
        Callback::from(move |_: MouseEvent| room.state.dispatch(RoomAction::Mode(next_mode)))
    };
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
                <div class={classes!("tiles", mode)} ref={tiles_ref}>
                    <nav class="view-bar">
                        <button id="view-mode" onclick={on_mode}>{ mode_label }</button>
                        if layout.pages > 1 {
                            <button id="page-prev" disabled={layout.page == 0} onclick={to_page(layout.page.saturating_sub(1))}>{"‹"}</button>
                            <span id="page" data-page={layout.page.to_string()} data-pages={layout.pages.to_string()}>
                                { format!("Page {} of {}", layout.page + 1, layout.pages) }
                            </span>
                            <button id="page-next" disabled={layout.page + 1 == layout.pages} onclick={to_page(layout.page + 1)}>{"›"}</button>
                        }
                    </nav>
                    if let Some(main) = layout.main {
                        <section class="main-tile" ref={main_ref}>{ tile(main) }</section>
                    }
                    <section class="grid" style={format!("grid-template-columns: repeat({columns}, 1fr)")}>
                        <SelfTile stream={stream} name={state.me.display_name.clone()} audio_on={state.me.audio_on} video_on={state.me.video_on} speaking={state.me.speaking} />
                        { for layout.tiles.iter().map(|s| tile(*s)) }
                        { for screens.iter().map(|(session, p)| html! {
                            <ScreenTile key={format!("screen-{session}")} session={*session} name={p.display_name.clone()} frames={p.stats.screen_frames} />
                        }) }
                    </section>
                </div>
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
