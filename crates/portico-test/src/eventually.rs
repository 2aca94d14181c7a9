/// Retries an assertion until it holds or a deadline passes (default 5 s),
/// for effects that land asynchronously (log lines, reloads, counters).
///
/// ```no_run
/// # async fn demo(path: std::path::PathBuf) {
/// portico_test::assert_eventually!(std::fs::read_to_string(&path).unwrap_or_default().contains("GET"));
/// portico_test::assert_eventually!(path.exists(), timeout = std::time::Duration::from_secs(1), "no file at {}", path.display());
/// # }
/// ```
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr $(,)?) => {
        $crate::assert_eventually!($cond, timeout = ::std::time::Duration::from_secs(5), "condition never held: {}", stringify!($cond))
    };
    ($cond:expr, timeout = $timeout:expr $(,)?) => {
        $crate::assert_eventually!($cond, timeout = $timeout, "condition never held: {}", stringify!($cond))
    };
    ($cond:expr, timeout = $timeout:expr, $($msg:tt)+) => {{
        let deadline = ::std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() >= deadline {
                panic!($($msg)+);
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(10)).await;
        }
    }};
}
