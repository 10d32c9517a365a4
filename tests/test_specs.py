import pytest
from hypothesis import given
from hypothesis import strategies as st

from traitscope.errors import TraitscopeError
from traitscope.specs import Position, format_layers, parse_layers, parse_position, position_from_slug


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", list(range(30))),
        ("8", [8]),
        ("6-10", [6, 7, 8, 9, 10]),
        ("-1", [29]),
        ("0%", [0]),
        ("100%", [29]),
        ("30%-40%", [9, 10, 11, 12]),
        ("2,5,8-9", [2, 5, 8, 9]),
        ("8, 8,7", [7, 8]),
        ([3, 1], [1, 3]),
        (4, [4]),
    ],
)
def test_parse_layers(spec, expected):
    assert parse_layers(spec, 30) == expected


@pytest.mark.parametrize("spec", ["30", "-31", "10-5", "abc", "", "5-", "150%", "1..3"])
def test_parse_layers_rejects(spec):
    with pytest.raises(TraitscopeError) as exc:
        parse_layers(spec, 30)
    assert "\n" not in str(exc.value)
    assert "layer" in str(exc.value)


def test_out_of_range_message_names_valid_range():
    with pytest.raises(TraitscopeError, match="0-29"):
        parse_layers("30", 30)


def test_format_layers_roundtrip():
    for layers in ([1, 2, 3, 7, 9, 10], [0], list(range(30))):
        assert parse_layers(format_layers(layers), 30) == layers


@pytest.mark.parametrize(
    ("spec", "prompt_len", "resp_len", "expected"),
    [
        ("response[:]", 3, 4, [3, 4, 5, 6]),
        ("response", 3, 4, [3, 4, 5, 6]),
        ("response[:2]", 3, 4, [3, 4]),
        ("response[-1]", 3, 4, [6]),
        ("prompt[-1]", 3, 4, [2]),
        ("prompt[0]", 3, 4, [0]),
        ("all[:]", 2, 1, [0, 1, 2]),
        ("all[1:]", 2, 1, [1, 2]),
        ("response[5]", 3, 4, []),
        ("response[:]", 3, 0, []),
    ],
)
def test_position_select(spec, prompt_len, resp_len, expected):
    assert parse_position(spec).select(prompt_len, resp_len) == expected


@pytest.mark.parametrize("spec", ["resp[:]", "response[", "response[a]", "prompt[1:2:3]", "", "response[:]x"])
def test_position_rejects(spec):
    with pytest.raises(TraitscopeError, match="position spec"):
        parse_position(spec)


def test_position_str_and_slug_are_stable():
    p = parse_position("response[:5]")
    assert str(p) == "response[:5]"
    assert parse_position(str(p)) == p
    assert p.slug == "response_to5"
    assert parse_position("response[:]").slug == "response_all"
    assert parse_position("prompt[-1]").slug == "prompt_-1"


def test_position_slugs_never_collide():
    # response[:5] and response[-5] once shared the folder response_-5 and silently mixed runs
    assert parse_position("response[:5]").slug != parse_position("response[-5]").slug
    assert parse_position("response[-5:]").slug != parse_position("response[-5]").slug


_bound = st.one_of(st.none(), st.integers(-50, 50))


@given(
    st.sampled_from(["prompt", "response", "all"]),
    st.one_of(st.tuples(st.just("index"), st.integers(-50, 50)), st.tuples(_bound, _bound)),
)
def test_position_slug_round_trips(region, sel):
    p = Position(region, index=sel[1]) if sel[0] == "index" else Position(region, start=sel[0], stop=sel[1])
    assert position_from_slug(p.slug) == p
    assert parse_position(str(p)) == p


@given(st.text(max_size=30))
def test_layer_parser_only_raises_own_error(text):
    try:
        parse_layers(text, 12)
    except TraitscopeError:
        pass


@given(st.text(max_size=30))
def test_position_parser_only_raises_own_error(text):
    try:
        parse_position(text)
    except TraitscopeError:
        pass
