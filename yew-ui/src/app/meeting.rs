//! A meeting's link, `/meeting/{id}`: looks the meeting and our session up, then hands over to
//! the room page (lobby with password and sign-in, waiting room, the call).

use wasm_bindgen_futures::spawn_local;
use yew::prelude::*;
use yew_router::prelude::Link;

use super::Route;
use super::room::RoomPage;
use crate::services::api::{self, MeetingView, SessionInfo};

#[derive(Properties, PartialEq)]
pub struct MeetingPageProps {
    pub id: String,
}

#[derive(Clone, PartialEq)]
enum Lookup {
    Loading,
    Found(MeetingView, SessionInfo),
    Missing,
    Failed(String),
}

#[function_component]
pub fn MeetingPage(props: &MeetingPageProps) -> Html {
    let lookup = use_state(|| Lookup::Loading);
    {
        let lookup = lookup.clone();
        use_effect_with(props.id.clone(), move |id| {
            let id = id.clone();
            spawn_local(async move {
                let (meeting, session) = futures_util::future::join(api::meeting(&id), api::session()).await;
                lookup.set(match (meeting, session) {
                    (Ok(Some(m)), Ok(s)) => Lookup::Found(m, s),
                    (Ok(None), _) => Lookup::Missing,
                    (Err(e), _) | (_, Err(e)) => Lookup::Failed(e.message),
                });
            });
        });
    }
    let home = html! { <Link<Route> to={Route::Home}>{"Home"}</Link<Route>> };
    match &*lookup {
        Lookup::Loading => html! { <main class="page"><p>{"Looking the meeting up…"}</p></main> },
        Lookup::Missing => html! { <main class="page"><h1>{"No such meeting"}</h1>{home}</main> },
        Lookup::Failed(e) => {
            html! { <main class="page"><h1>{"The server did not answer"}</h1><p class="error">{ e }</p>{home}</main> }
        }
        Lookup::Found(m, _) if m.ended_at.is_some() => {
            html! { <main class="page left"><h1 id="meeting-ended">{ format!("{} has ended", m.name) }</h1>{home}</main> }
        }
        Lookup::Found(m, s) => {
            html! { <RoomPage name={m.id.clone()} meeting={Some(m.clone())} session={Some(s.clone())} /> }
        }
    }
}
