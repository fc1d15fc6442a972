//! The call's buttons.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct ControlsProps {
    pub audio_on: bool,
    pub video_on: bool,
    pub screen_on: bool,
    pub on_audio: Callback<()>,
    pub on_video: Callback<()>,
    pub on_screen: Callback<()>,
    pub on_copy_link: Callback<()>,
    pub on_leave: Callback<()>,
    pub link_copied: bool,
}

#[function_component]
pub fn Controls(props: &ControlsProps) -> Html {
    let click = |cb: &Callback<()>| {
        let cb = cb.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    html! {
        <div class="controls">
            <button id="toggle-audio" class={classes!((!props.audio_on).then_some("off"))} onclick={click(&props.on_audio)}>
                { if props.audio_on { "Mute" } else { "Unmute" } }
            </button>
            <button id="toggle-video" class={classes!((!props.video_on).then_some("off"))} onclick={click(&props.on_video)}>
                { if props.video_on { "Stop camera" } else { "Start camera" } }
            </button>
            <button id="toggle-screen" class={classes!(props.screen_on.then_some("on"))} onclick={click(&props.on_screen)}>
                { if props.screen_on { "Stop sharing" } else { "Share screen" } }
            </button>
            <button id="copy-link" onclick={click(&props.on_copy_link)}>
                { if props.link_copied { "Link copied" } else { "Copy link" } }
            </button>
            <button id="leave" class="leave" onclick={click(&props.on_leave)}>{"Leave"}</button>
        </div>
    }
}
