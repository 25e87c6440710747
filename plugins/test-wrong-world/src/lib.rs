//! test-wrong-world: a valid component of an unrelated world (`example:greeter`), which the host
//! must refuse naming the exports it expected and found. No config.

wit_bindgen::generate!({ path: "wit", world: "greeter" });

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
