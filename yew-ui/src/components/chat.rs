//! End-to-end encrypted chat.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::types::room::ChatLine;

#[derive(Properties, PartialEq)]
pub struct ChatPanelProps {
    pub lines: Vec<ChatLine>,
    pub on_send: Callback<String>,
}

#[function_component]
pub fn ChatPanel(props: &ChatPanelProps) -> Html {
    let input = use_node_ref();
    let send = {
        let (input, on_send) = (input.clone(), props.on_send.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if let Some(field) = input.cast::<HtmlInputElement>() {
                let text = field.value();
                if !text.trim().is_empty() {
                    on_send.emit(text);
                    field.set_value("");
                }
            }
        })
    };
    html! {
        <div class="chat">
            <h3>{"Chat"}</h3>
            <ol id="chat-lines">
                { for props.lines.iter().map(|l| html! {
                    <li class={classes!((l.session == 0).then_some("mine"))}><b>{ &l.name }</b>{": "}{ &l.text }</li>
                }) }
            </ol>
            <form onsubmit={send}>
                <input id="chat-input" ref={input} maxlength="2000" placeholder="Message (end-to-end encrypted)" />
                <button id="chat-send" type="submit">{"Send"}</button>
            </form>
        </div>
    }
}
