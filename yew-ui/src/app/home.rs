//! Home: pick a display name, then create a meeting (the host admits people; an optional
//! password), create an open room (a random readable name), or join either by its name.

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;
use yew_router::prelude::*;

use super::{Route, save_name, saved_name};
use crate::services::api;
use crate::types::names::room_name;

/// 16 bytes from the browser's `crypto.getRandomValues`; `None` if it fails, since a room name
/// from anything weaker could be guessed.
fn random_bytes() -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).ok().map(|()| bytes)
}

#[function_component]
pub fn Home() -> Html {
    let navigator = use_navigator();
    let name = use_node_ref();
    // Kept in state, so a re-render (the session arriving) does not undo what is typed.
    let typed = use_state(saved_name);
    let on_name = {
        let typed = typed.clone();
        Callback::from(move |e: InputEvent| typed.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let room = use_node_ref();
    let password = use_node_ref();
    let waiting_room = use_node_ref();
    let error = use_state(|| None::<String>);
    let session = use_state(|| None::<api::SessionInfo>);
    {
        let session = session.clone();
        use_effect_with((), move |_| {
            spawn_local(async move {
                if let Ok(s) = api::session().await {
                    session.set(Some(s));
                }
            });
        });
    }
    let display_name = {
        let (name, error) = (name.clone(), error.clone());
        move || {
            let display = name.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default().trim().to_owned();
            if videocall_types::DisplayName::parse(&display).is_err() {
                error.set(Some("Type the name others will see (1 to 64 characters).".into()));
                return None;
            }
            save_name(&display);
            Some(display)
        }
    };
    let new_meeting = {
        let (navigator, password, waiting_room, error, display_name) =
            (navigator.clone(), password.clone(), waiting_room.clone(), error.clone(), display_name.clone());
        Callback::from(move |_: MouseEvent| {
            let Some(display) = display_name() else { return };
            let password = password.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let waiting = waiting_room.cast::<HtmlInputElement>().is_none_or(|i| i.checked());
            let (navigator, error) = (navigator.clone(), error.clone());
            spawn_local(async move {
                let created = async {
                    let me = api::start_session(&display).await?;
                    api::create_meeting(&format!("{}'s meeting", me.display_name), &password, waiting).await
                };
                match created.await {
                    Ok(meeting) => {
                        if let Some(n) = &navigator {
                            n.push(&Route::Meeting { id: meeting.id });
                        }
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };

    let go = {
        let (navigator, name, room, error) = (navigator.clone(), name.clone(), room.clone(), error.clone());
        move |create: bool| {
            let display = name.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default();
            let display = display.trim().to_owned();
            if videocall_types::DisplayName::parse(&display).is_err() {
                error.set(Some("Type the name others will see (1 to 64 characters).".into()));
                return;
            }
            let target = if create {
                let Some(random) = random_bytes() else {
                    error.set(Some("This browser gave no random numbers to name the room with.".into()));
                    return;
                };
                room_name(random)
            } else {
                room.cast::<HtmlInputElement>().map(|i| i.value()).unwrap_or_default().trim().to_owned()
            };
            if videocall_types::RoomId::parse(&target).is_err() {
                error.set(Some("Room names use letters, digits, '-' and '_' (up to 64).".into()));
                return;
            }
            save_name(&display);
            let navigator = navigator.clone();
            spawn_local(async move {
                // A meeting's id goes to the meeting's page; any other name is an open room.
                let route = match api::meeting(&target).await {
                    Ok(Some(m)) => Route::Meeting { id: m.id },
                    _ => Route::Room { name: target },
                };
                if let Some(n) = &navigator {
                    n.push(&route);
                }
            });
        }
    };
    let create = {
        let go = go.clone();
        Callback::from(move |_: MouseEvent| go(true))
    };
    let join = Callback::from(move |e: SubmitEvent| {
        e.prevent_default();
        go(false)
    });
    html! {
        <main class="page home">
            <h1>{"videocall"}</h1>
            <p class="tagline">{"Video meetings, end-to-end encrypted, on your own server."}</p>
            <label>{"Your name"}<input id="display-name" ref={name} value={(*typed).clone()} oninput={on_name} maxlength="64" placeholder="Ada Lovelace" /></label>
            if let Some(user) = session.as_ref().and_then(|s| s.user.as_ref()).filter(|u| u.kind == "signed_in") {
                <p class="hint" id="signed-in-as">{ format!("Signed in as {}", user.display_name) }</p>
            } else if session.as_ref().is_some_and(|s| s.sign_in_available) {
                <p><a id="sign-in" class="button" href="/api/v1/auth/login?return_to=/">{"Sign in"}</a></p>
            }
            <fieldset class="new-meeting">
                <label class="inline"><input id="waiting-room-option" ref={waiting_room} type="checkbox" checked=true />{" Waiting room: I admit each person"}</label>
                <label>{"Password (optional)"}<input id="new-meeting-password" ref={password} type="password" autocomplete="new-password" maxlength="256" /></label>
                <button id="create-meeting" class="primary" onclick={new_meeting}>{"New meeting"}</button>
            </fieldset>
            <button id="create-room" onclick={create}>{"Create an open room"}</button>
            <form class="join" onsubmit={join}>
                <input id="room-name" ref={room} maxlength="64" placeholder="room name, e.g. brave-otter-harbor-7k2m9q4xw3ht5" />
                <button id="join-room" type="submit">{"Join"}</button>
            </form>
            if let Some(e) = &*error { <p class="error">{ e }</p> }
        </main>
    }
}
