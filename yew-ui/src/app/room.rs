//! A room: the lobby until joined, then the call (tiles, controls, people, chat, diagnostics).

use yew::prelude::*;
use yew_router::prelude::Link;

use super::Route;
use super::lobby::{JoinChoice, Lobby};
use crate::components::{
    ChatPanel, ConnectionStatus, Controls, Diagnostics, ParticipantList, PeerTile, ScreenTile, SelfTile,
};
use crate::hooks::{RoomHandle, use_identity, use_local_media, use_room};
use crate::services::call::JoinRequest;
use crate::services::media::audio_out::AudioOut;
use crate::types::room::Connection;

#[derive(Properties, PartialEq)]
pub struct RoomPageProps {
    pub name: String,
}

#[function_component]
pub fn RoomPage(props: &RoomPageProps) -> Html {
    let identity = use_identity();
    let media = use_local_media();
    let room = use_room(&props.name, &super::saved_name());
    let error = use_state(|| None::<String>);

    let on_join = {
        let (identity, media, room, error, name) =
            (identity.clone(), media.clone(), room.clone(), error.clone(), props.name.clone());
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
            // May still be opening (autojoin): the effect below hands it over when it is.
            let stream = media.take.emit(());
            let request = JoinRequest {
                room: name.clone(),
                display_name: choice.display_name,
                preference: choice.preference,
                identity: key,
                stream,
                audio_on: choice.audio_on,
                video_on: choice.video_on,
                audio_context,
            };
            if let Err(e) = room.join(request) {
                error.set(Some(e));
            }
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
        return html! { <Lobby room={props.name.clone()} media={media} identity={identity} on_join={on_join} error={(*error).clone()} /> };
    }
    html! { <CallView room={room} /> }
}

#[derive(Properties, PartialEq)]
struct CallViewProps {
    room: RoomHandle,
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
                    <ParticipantList state={state.clone()} />
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
