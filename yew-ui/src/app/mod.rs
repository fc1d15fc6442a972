//! Routes and pages: home (create a meeting or a room, or join), then a room's or a meeting's
//! lobby, the waiting room, and the call itself.

mod home;
mod lobby;
mod meeting;
mod room;

use yew::prelude::*;
use yew_router::prelude::*;

#[derive(Clone, Routable, PartialEq)]
pub enum Route {
    #[at("/")]
    Home,
    #[at("/room/:name")]
    Room { name: String },
    #[at("/meeting/:id")]
    Meeting { id: String },
    #[not_found]
    #[at("/404")]
    NotFound,
}

fn switch(route: Route) -> Html {
    match route {
        Route::Home => html! { <home::Home /> },
        Route::Room { name } => html! { <room::RoomPage {name} /> },
        Route::Meeting { id } => html! { <meeting::MeetingPage {id} /> },
        Route::NotFound => {
            html! { <main class="page"><h1>{"Not found"}</h1><Link<Route> to={Route::Home}>{"Home"}</Link<Route>></main> }
        }
    }
}

#[function_component]
pub fn App() -> Html {
    html! {
        <BrowserRouter>
            <Switch<Route> render={switch} />
        </BrowserRouter>
    }
}

pub use crate::services::prefs::{save_name, saved_name};

/// The name to start with: `?name=` in the link, else the one remembered.
pub fn initial_name() -> String {
    crate::services::js::query_param("name").filter(|n| !n.trim().is_empty()).unwrap_or_else(saved_name)
}
