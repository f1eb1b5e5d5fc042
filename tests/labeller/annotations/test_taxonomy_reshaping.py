"""Renaming, moving and merging labels carries the boxes along, records history and asks for an index sync."""

from unittest import mock

import pytest

from labeller.annotations.models import (
    Annotation,
    AnnotationAction,
    AnnotationEvent,
    AnnotationSource,
    AnnotationStatus,
    Label,
    LabelAction,
    LabelEvent,
)
from labeller.tenants.models import Role
from tests.conftest import api_path
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def index_sync_soon():
    with mock.patch("labeller.annotations.taxonomy.index_sync_soon") as hook:
        yield hook


def names(tenant) -> list[str]:
    return sorted(Label.objects.filter(project=tenant.project).values_list("name", flat=True))


def taxonomy_state(tenant) -> list:
    labels = list(
        Label.objects.filter(project=tenant.project)
        .order_by("pk")
        .values_list("pk", "name", "color", "hotkey", "deprecated", "version")
    )
    boxes = list(
        Annotation.objects.filter(project=tenant.project).order_by("pk").values_list("pk", "label_id", "version")
    )
    return [labels, boxes, LabelEvent.objects.count(), AnnotationEvent.objects.count()]


def post(tenant, suffix, body, role="admin"):
    return tenant.client(role).post(api_path(tenant, suffix), body, format="json")


# --- rename and move ------------------------------------------------------------------------


def test_a_rename_takes_the_sub_labels_and_keeps_every_box(tenant, index_sync_soon):
    dish = LabelFactory(project=tenant.project, name="food.dish")
    soup = LabelFactory(project=tenant.project, name="food.dish.soup")
    LabelFactory(project=tenant.project, name="food")
    box = AnnotationFactory(frame=FrameFactory(project=tenant.project), label=soup)

    response = post(tenant, f"labels/{dish.pk}/rename", {"version": 1, "name": "meal.course"})

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "meal.course" and response.json()["version"] == 2
    assert names(tenant) == ["food", "meal", "meal.course", "meal.course.soup"]
    box.refresh_from_db()
    assert box.label.name == "meal.course.soup"
    events = LabelEvent.objects.filter(action=LabelAction.RENAMED)
    assert {(e.before["name"], e.after["name"]) for e in events} == {
        ("food.dish", "meal.course"),
        ("food.dish.soup", "meal.course.soup"),
    }
    assert events.first().actor == tenant.admin
    index_sync_soon.assert_called_once_with(project_id=tenant.project.pk)


def test_a_move_puts_the_label_under_another_parent(tenant, index_sync_soon):
    cake = LabelFactory(project=tenant.project, name="food.cake")
    sweets = LabelFactory(project=tenant.project, name="sweets")

    response = post(tenant, f"labels/{cake.pk}/move", {"version": 1, "parent_id": sweets.pk})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "sweets.cake"
    top = post(tenant, f"labels/{cake.pk}/move", {"version": 2, "parent_id": None})
    assert top.json()["name"] == "cake"


@pytest.mark.parametrize(
    "new_name,words",
    [("food.soup", "already exists; merge"), ("food.dish.soup.x", "under itself"), ("Food Dish", "dotted")],
    ids=["taken", "under-itself", "bad-name"],
)
def test_a_rename_that_cannot_be_is_a_400_naming_the_field(tenant, new_name, words):
    dish = LabelFactory(project=tenant.project, name="food.dish.soup")
    LabelFactory(project=tenant.project, name="food.soup")
    before = taxonomy_state(tenant)

    response = post(tenant, f"labels/{dish.pk}/rename", {"version": 1, "name": new_name})

    assert response.status_code == 400
    assert words in str(response.json())
    assert taxonomy_state(tenant) == before


@pytest.mark.parametrize("action", ["rename", "merge"])
def test_a_subtree_whose_names_would_grow_too_long_is_a_400_and_changes_nothing(tenant, action):
    short = LabelFactory(project=tenant.project, name="a")
    LabelFactory(project=tenant.project, name="a." + "b" * 150)
    longer = LabelFactory(project=tenant.project, name="c" * 60)
    before = taxonomy_state(tenant)

    if action == "rename":
        response = post(tenant, f"labels/{short.pk}/rename", {"version": 1, "name": "d" * 60})
    else:
        response = post(tenant, f"labels/{short.pk}/merge", {"version": 1, "into_id": longer.pk})

    assert response.status_code == 400, response.content
    assert "at most 200" in str(response.json()) and list(response.json()["errors"]) == ["name" if action == "rename" else "into_id"]
    assert taxonomy_state(tenant) == before


def test_a_stale_rename_is_a_409_with_the_label_as_it_is(tenant):
    label = LabelFactory(project=tenant.project, name="food.dish", version=3)
    response = post(tenant, f"labels/{label.pk}/rename", {"version": 2, "name": "meal"})
    assert response.status_code == 409
    assert response.json()["current"]["version"] == 3
    assert names(tenant) == ["food.dish"]


# --- merge ----------------------------------------------------------------------------------


def test_a_merge_moves_every_box_in_one_transaction_with_history(tenant, index_sync_soon):
    cat = LabelFactory(project=tenant.project, name="animal.cat", hotkey="c")
    kitty = LabelFactory(project=tenant.project, name="animal.kitty")
    frame = FrameFactory(project=tenant.project)
    moved = [
        AnnotationFactory(frame=frame, label=kitty),
        AnnotationFactory(frame=frame, label=kitty, status=AnnotationStatus.PROPOSED, source=AnnotationSource.MODEL),
    ]
    kept = AnnotationFactory(frame=frame, label=cat)
    suggesting = AnnotationFactory(
        frame=frame,
        label=None,
        status=AnnotationStatus.PROPOSED,
        source=AnnotationSource.MODEL,
        suggestions=[{"label_id": kitty.pk, "score": 0.7}, {"label_id": cat.pk, "score": 0.2}],
    )

    response = post(tenant, f"labels/{kitty.pk}/merge", {"version": 1, "into_id": cat.pk})

    assert response.status_code == 200, response.content
    assert response.json()["moved_annotations"] == 2 and response.json()["into"]["name"] == "animal.cat"
    assert not Label.objects.filter(pk=kitty.pk).exists()
    for box in moved:
        before_version = box.version
        box.refresh_from_db()
        assert box.label_id == cat.pk and box.version == before_version + 1
        event = AnnotationEvent.objects.get(annotation_id=box.pk, action=AnnotationAction.UPDATED)
        assert (event.before["label_id"], event.after["label_id"], event.actor) == (kitty.pk, cat.pk, tenant.admin)
    kept.refresh_from_db()
    assert kept.version == 1 and not AnnotationEvent.objects.filter(annotation_id=kept.pk).exists()
    suggesting.refresh_from_db()
    assert suggesting.suggestions == [{"label_id": cat.pk, "score": 0.7}]
    merged = LabelEvent.objects.get(action=LabelAction.MERGED)
    assert merged.label_id == kitty.pk and merged.after == {"into_id": cat.pk, "into": "animal.cat", "annotations": 2}
    index_sync_soon.assert_called_once_with(project_id=tenant.project.pk)


def test_a_merge_takes_the_whole_subtree_moving_or_merging_each_sub_label(tenant, index_sync_soon):
    # given food.soup with two sub-labels: "clear" exists under the target too, "thick" does not
    soup = LabelFactory(project=tenant.project, name="food.soup")
    clear = LabelFactory(project=tenant.project, name="food.soup.clear", hotkey="q")
    consomme = LabelFactory(project=tenant.project, name="food.soup.clear.consomme")
    thick = LabelFactory(project=tenant.project, name="food.soup.thick", color="#aa0000", hotkey="t")
    broth = LabelFactory(project=tenant.project, name="food.broth")
    broth_clear = LabelFactory(project=tenant.project, name="food.broth.clear")
    frame = FrameFactory(project=tenant.project)
    soup_box = AnnotationFactory(frame=frame, label=soup)
    clear_boxes = [AnnotationFactory(frame=frame, label=clear) for _ in range(2)]
    thick_box = AnnotationFactory(frame=frame, label=thick)
    consomme_box = AnnotationFactory(frame=frame, label=consomme)
    suggesting = AnnotationFactory(
        frame=frame,
        label=None,
        status=AnnotationStatus.PROPOSED,
        source=AnnotationSource.MODEL,
        suggestions=[{"label_id": clear.pk, "score": 0.6}, {"label_id": soup.pk, "score": 0.3}],
    )

    # when
    response = post(tenant, f"labels/{soup.pk}/merge", {"version": 1, "into_id": broth.pk})

    # then boxes of merged labels move, moved labels keep their id, colour, hotkey and boxes
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["into"]["name"] == "food.broth" and body["moved_annotations"] == 3
    assert sorted((m["id"], m["name_before"], m["name"]) for m in body["moved_labels"]) == [
        (consomme.pk, "food.soup.clear.consomme", "food.broth.clear.consomme"),
        (thick.pk, "food.soup.thick", "food.broth.thick"),
    ]
    assert body["merged_labels"] == [
        {
            "name_before": "food.soup.clear",
            "into_id": broth_clear.pk,
            "into": "food.broth.clear",
            "moved_annotations": 2,
        }
    ]
    assert names(tenant) == ["food.broth", "food.broth.clear", "food.broth.clear.consomme", "food.broth.thick"]
    assert not Label.objects.filter(pk__in=[soup.pk, clear.pk]).exists()
    thick.refresh_from_db()
    assert (thick.name, thick.color, thick.hotkey, thick.version) == ("food.broth.thick", "#aa0000", "t", 2)
    moved_to = {soup_box.pk: broth.pk, **{box.pk: broth_clear.pk for box in clear_boxes}}
    for pk, label_id in moved_to.items():
        box = Annotation.objects.get(pk=pk)
        assert (box.label_id, box.version) == (label_id, 2)
        event = AnnotationEvent.objects.get(annotation_id=pk, action=AnnotationAction.UPDATED)
        assert (event.after["label_id"], event.actor) == (label_id, tenant.admin)
    for box in (thick_box, consomme_box):  # their label moved with them: the boxes are untouched
        before_version = box.version
        box.refresh_from_db()
        assert box.version == before_version and not AnnotationEvent.objects.filter(annotation_id=box.pk).exists()
    suggesting.refresh_from_db()
    assert suggesting.suggestions == [{"label_id": broth_clear.pk, "score": 0.6}, {"label_id": broth.pk, "score": 0.3}]
    events = {(e.label_id, e.action) for e in LabelEvent.objects.all()}
    assert events == {
        (soup.pk, LabelAction.MERGED),
        (clear.pk, LabelAction.MERGED),
        (thick.pk, LabelAction.RENAMED),
        (consomme.pk, LabelAction.RENAMED),
    }
    assert LabelEvent.objects.get(label_id=clear.pk).after == {
        "into_id": broth_clear.pk,
        "into": "food.broth.clear",
        "annotations": 2,
    }
    index_sync_soon.assert_called_once_with(project_id=tenant.project.pk)


def test_a_label_merged_into_its_parent_brings_its_sub_labels_up(tenant):
    LabelFactory(project=tenant.project, name="food")
    soup = LabelFactory(project=tenant.project, name="food.soup")
    clear = LabelFactory(project=tenant.project, name="food.soup.clear")
    food = Label.objects.get(project=tenant.project, name="food")

    response = post(tenant, f"labels/{soup.pk}/merge", {"version": 1, "into_id": food.pk})

    assert response.status_code == 200, response.content
    assert names(tenant) == ["food", "food.clear"]
    assert Label.objects.get(name="food.clear").pk == clear.pk


@pytest.mark.parametrize(
    "case",
    ["itself", "into-own-sub-label", "deprecated-target", "deprecated-target-sub-label", "sub-label-in-own-place"],
)
def test_a_merge_that_cannot_be_is_a_400_naming_into_id_and_changes_nothing(tenant, case):
    source = LabelFactory(project=tenant.project, name="animal.cat")
    LabelFactory(project=tenant.project, name="animal.cat.tabby")
    target = LabelFactory(project=tenant.project, name="animal.dog")
    AnnotationFactory(frame=FrameFactory(project=tenant.project), label=source)
    if case == "itself":
        target = source
    elif case == "into-own-sub-label":
        target = Label.objects.get(name="animal.cat.tabby")
    elif case == "deprecated-target":
        Label.objects.filter(pk=target.pk).update(deprecated=True)
    elif case == "deprecated-target-sub-label":
        LabelFactory(project=tenant.project, name="animal.dog.tabby", deprecated=True)
    else:  # animal.cat.cat would become animal.cat, the label being merged away
        LabelFactory(project=tenant.project, name="animal.cat.cat")
        target = LabelFactory(project=tenant.project, name="animal")
    before = taxonomy_state(tenant)

    response = post(tenant, f"labels/{source.pk}/merge", {"version": 1, "into_id": target.pk})

    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["into_id"]
    assert taxonomy_state(tenant) == before


@pytest.mark.parametrize("where", ["other-organization", "other-project"])
def test_a_merge_into_a_label_of_another_project_changes_nothing(tenant, other_tenant, where):
    from tests.factories import ProjectFactory

    source = LabelFactory(project=tenant.project, name="animal.cat")
    LabelFactory(project=tenant.project, name="animal.cat.tabby")
    project = other_tenant.project
    if where == "other-project":
        project = ProjectFactory(organization=tenant.organization)
    target = LabelFactory(project=project, name="animal.dog")
    before = taxonomy_state(tenant)
    response = post(tenant, f"labels/{source.pk}/merge", {"version": 1, "into_id": target.pk})
    assert response.status_code == 400, response.content
    assert "into_id" in str(response.json())
    assert taxonomy_state(tenant) == before


def test_a_stale_merge_is_a_409_with_the_label_as_it_is_and_changes_nothing(tenant):
    source = LabelFactory(project=tenant.project, name="food.soup", version=3)
    LabelFactory(project=tenant.project, name="food.soup.clear")
    target = LabelFactory(project=tenant.project, name="food.broth")
    AnnotationFactory(frame=FrameFactory(project=tenant.project), label=source)
    before = taxonomy_state(tenant)

    response = post(tenant, f"labels/{source.pk}/merge", {"version": 2, "into_id": target.pk})

    assert response.status_code == 409
    assert response.json()["code"] == "stale_version" and response.json()["current"]["version"] == 3
    assert taxonomy_state(tenant) == before


def test_a_label_in_use_is_not_deleted(tenant):
    label = LabelFactory(project=tenant.project, name="animal.cat")
    AnnotationFactory(frame=FrameFactory(project=tenant.project), label=label)
    response = tenant.client("admin").delete(api_path(tenant, f"labels/{label.pk}"))
    assert response.status_code == 409 and response.json()["code"] == "label_in_use"
    assert Label.objects.filter(pk=label.pk).exists()


# --- the taxonomy as JSON -------------------------------------------------------------------


def test_export_then_import_into_another_project_gives_the_same_taxonomy(tenant):
    from tests.factories import ProjectFactory

    LabelFactory(project=tenant.project, name="food", color="#112233")
    LabelFactory(project=tenant.project, name="food.cake", color="#ff8800", hotkey="k")
    LabelFactory(project=tenant.project, name="food.old", deprecated=True)
    document = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/labels/export"))
    assert document.status_code == 200
    assert document.json()["format"] == "labeller-taxonomy"
    other = ProjectFactory(organization=tenant.organization)

    imported = post(tenant, f"projects/{other.pk}/labels/import", document.json())

    assert imported.status_code == 200, imported.content
    assert sorted(imported.json()["created"]) == ["food", "food.cake", "food.old"]
    again = tenant.client("admin").get(api_path(tenant, f"projects/{other.pk}/labels/export"))
    assert again.json() == document.json()
    assert post(tenant, f"projects/{other.pk}/labels/import", document.json()).json() == {
        "created": [],
        "updated": [],
        "unchanged": 3,
    }


def test_an_import_updates_colours_and_moves_hotkeys_between_labels(tenant):
    LabelFactory(project=tenant.project, name="cat", hotkey="c")
    LabelFactory(project=tenant.project, name="dog", hotkey="d")
    body = {
        "labels": [{"name": "cat", "hotkey": "d"}, {"name": "dog", "hotkey": "c", "color": "#000000"}, {"name": "bird"}]
    }

    response = post(tenant, f"projects/{tenant.project.pk}/labels/import", body)

    assert response.status_code == 200, response.content
    assert response.json() == {"created": ["bird"], "updated": ["cat", "dog"], "unchanged": 0}
    hotkeys = dict(Label.objects.filter(project=tenant.project).values_list("name", "hotkey"))
    assert hotkeys == {"cat": "d", "dog": "c", "bird": ""}
    assert LabelEvent.objects.filter(action=LabelAction.IMPORTED).count() == 3


@pytest.mark.parametrize(
    "labels,words",
    [
        ([{"name": "a", "hotkey": "x"}, {"name": "b", "hotkey": "x"}], "also given to"),
        ([{"name": "b", "hotkey": "k"}], "belongs to 'keeper'"),
        ([{"name": "Not Dotted"}], "dotted"),
        ([{"name": "c", "color": "red"}], "color"),
    ],
    ids=["hotkey-twice", "hotkey-of-another", "bad-name", "bad-colour"],
)
def test_a_bad_import_is_a_400_and_changes_nothing(tenant, labels, words):
    LabelFactory(project=tenant.project, name="keeper", hotkey="k")
    before = taxonomy_state(tenant)
    response = post(tenant, f"projects/{tenant.project.pk}/labels/import", {"labels": labels})
    assert response.status_code == 400
    assert words in str(response.json())
    assert taxonomy_state(tenant) == before


# --- non-admins -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ANNOTATOR, Role.REVIEWER])
@pytest.mark.parametrize("action", ["rename", "move", "merge", "import", "hotkey", "delete"])
def test_non_admins_get_403_and_change_nothing(tenant, role, action):
    source = LabelFactory(project=tenant.project, name="animal.cat")
    LabelFactory(project=tenant.project, name="animal.cat.tabby")
    target = LabelFactory(project=tenant.project, name="animal.dog")
    AnnotationFactory(frame=FrameFactory(project=tenant.project), label=source)
    client = tenant.client(role.value)
    before = taxonomy_state(tenant)
    calls = {
        "rename": lambda: client.post(
            api_path(tenant, f"labels/{source.pk}/rename"), {"version": 1, "name": "x"}, format="json"
        ),
        "move": lambda: client.post(
            api_path(tenant, f"labels/{source.pk}/move"), {"version": 1, "parent_id": None}, format="json"
        ),
        "merge": lambda: client.post(
            api_path(tenant, f"labels/{source.pk}/merge"), {"version": 1, "into_id": target.pk}, format="json"
        ),
        "import": lambda: client.post(
            api_path(tenant, f"projects/{tenant.project.pk}/labels/import"),
            {"labels": [{"name": "new"}]},
            format="json",
        ),
        "hotkey": lambda: client.patch(
            api_path(tenant, f"labels/{source.pk}"), {"version": 1, "hotkey": "z"}, format="json"
        ),
        "delete": lambda: client.delete(api_path(tenant, f"labels/{target.pk}")),
    }

    response = calls[action]()

    assert response.status_code == 403
    assert taxonomy_state(tenant) == before
