//! A plain WASI command: it exports `wasi:cli/run`, not the `vigil:rule`
//! world, so the host must refuse it with a clear message.

fn main() {
    println!("I am not a rule");
}
