//! Assignment allocates nothing: a counting global allocator around
//! `evaluate` for every committed test, and around `assign_all`, whose
//! answer list lives on the stack up to `INLINE_ASSIGNMENTS` tests.
//! Visitors include non-ASCII ids (the UTF-16 path).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use offerlab::assignment::{assign_all, evaluate, AssignQuery, Attributes, INLINE_ASSIGNMENTS};
use offerlab::experiment::load_dir;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by `f`. The test harness runs this file's one
/// test alone, so no other thread allocates meanwhile.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn assignment_allocates_nothing_per_test() {
    let catalog = load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments"))).unwrap();
    let tests: Vec<_> = catalog.experiments().collect();
    assert!(tests.len() >= 5);
    let visitors: Vec<String> = (0..1000).map(|i| format!("{}-{i}", ["v", "visité", "顧客", "🛒"][i % 4])).collect();
    let mut attributes = Attributes::new();
    attributes.insert("device".into(), "mobile".into());
    let mut shown = 0;
    let n = allocations(|| {
        for v in &visitors {
            for exp in &tests {
                shown += usize::from(evaluate(exp, v, &attributes, None).is_some_and(|a| a.in_experiment));
            }
        }
    });
    assert_eq!(n, 0, "allocations while evaluating {} tests for 1,000 visitors", tests.len());
    assert!(shown > 1000, "the tests really ran: {shown} in-experiment answers");

    let queries: Vec<AssignQuery> = visitors
        .iter()
        .map(|v| AssignQuery { attributes: attributes.clone(), ..AssignQuery::new(v.parse().unwrap()) })
        .collect();
    let n = allocations(|| {
        for q in &queries {
            std::hint::black_box(assign_all(&catalog, q).unwrap());
        }
    });
    assert!(tests.len() <= INLINE_ASSIGNMENTS);
    assert_eq!(n, 0, "allocations while answering {} queries for {} tests", queries.len(), tests.len());
}
