"""What is shown, and when: calibration from outcomes, freshness at open, and never pulling
a proposal from under the person who holds its frame."""

import numpy as np
import pytest

from labeller.annotations.models import Annotation, AnnotationStatus
from labeller.annotations.services import Box, annotation_confirm, annotation_create, frame_complete
from labeller.media.models import Frame
from labeller.media.services import frame_assign_next
from labeller.tenants.models import Role
from labeller.training import proposing
from labeller.training.clock import learning_clock_read
from labeller.training.models import FrameProposals, ProposalOutcome
from proposals.calibration import BOX_FEATURES, box_features
from proposals.types import LabelSuggestion, RegionProposal
from tests.conftest import api_path
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory


@pytest.fixture
def frame(tenant):
    return FrameFactory(project=tenant.project, width=640, height=360)


@pytest.fixture
def label(tenant):
    return LabelFactory(project=tenant.project, name="food.dish.dessert")


def store(frame, proposals, shown, *, held=False, shot_labelled=False, chances=None):
    return proposing._store_proposals(
        frame, proposals, shown, "test@1", held=held, shot_labelled=shot_labelled, chances=chances
    )


def proposal(box, score, label=None, source="candidate"):
    suggestions = (LabelSuggestion(label_id=label.pk, score=0.9),) if label else ()
    return RegionProposal(box=box, score=score, source=source, suggestions=suggestions)


def test_completing_a_frame_decides_every_proposal_shown_or_hidden(tenant, frame, label):
    proposals = [
        proposal((10, 10, 60, 60), 0.9, label),  # shown, accepted
        proposal((100, 100, 150, 150), 0.8, label),  # shown, left open: a false positive
        proposal((200, 20, 260, 80), 0.3, label),  # hidden, matches a box the person drew
        proposal((202, 22, 262, 82), 0.2, label),  # hidden duplicate of the one above
        proposal((400, 200, 450, 250), 0.1),  # hidden, matches nothing
    ]
    store(frame, proposals, [0, 1])
    accepted = Annotation.objects.get(frame=frame, x1=10)
    annotation_confirm(annotation=accepted, actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=accepted.version)
    annotation_create(frame=frame, actor=tenant.annotator, box=Box(200, 20, 260, 80), label=label)

    Frame.objects.filter(pk=frame.pk).update(assigned_to=tenant.annotator)  # the frame is theirs
    frame_complete(frame=frame, actor=tenant.annotator, actor_role=Role.ANNOTATOR)

    decided = {tuple(o.box[:2]): o for o in ProposalOutcome.objects.filter(frame=frame)}
    assert all(o.decided_at is not None for o in decided.values())
    assert decided[(10, 10)].useful and decided[(10, 10)].shown and decided[(10, 10)].label_right
    assert decided[(100, 100)].useful is False
    assert decided[(200, 20)].useful and not decided[(200, 20)].shown and decided[(200, 20)].box_right
    assert decided[(202, 22)].useful is False  # one to one: shown too, it would have been rejected
    assert decided[(400, 200)].useful is False


def decide(tenant, frame, scores_useful, source="candidate", shot_labelled=False):
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=tenant.project, frame=frame, source=source, shot_labelled=shot_labelled, score=float(score), box=[0, 0, 1, 1],
            shown=False, useful=bool(useful), label_right=True, box_right=True, decided_at=frame.created_at,
        )
        for score, useful in scores_useful
    )


def test_a_cold_project_shows_a_few_guesses_and_a_learned_one_every_likely_object(tenant, frame, label):
    candidates = [proposal((i * 20.0, 0, i * 20.0 + 15, 15), 0.5 + i / 100, label) for i in range(20)]
    cold = proposing.show_policy(project_id=tenant.project.pk)
    shown_cold = proposing.choose_shown(candidates, cold, shot_labelled=False, frame_size=(640, 360))[0]
    assert cold.cold and len(shown_cold) == proposing.COLD_START_SHOWN

    # The history says high-scoring candidates are kept and low-scoring ones are not.
    decide(tenant, frame, [(s, s > 0.45) for s in np.linspace(0.0, 0.9, 200)])
    learned = proposing.show_policy(project_id=tenant.project.pk)
    assert not learned.cold
    shown, chance = proposing.choose_shown(candidates, learned, shot_labelled=False, frame_size=(640, 360))
    assert len(shown) == len(candidates) and (chance > learned.break_even).all()
    low = [proposal((0, 0, 10, 10), 0.2, label)]
    assert proposing.choose_shown(low, learned, shot_labelled=False, frame_size=(640, 360))[0] == []


def test_the_history_of_box_sizes_moves_the_chance_of_boxes_with_the_same_score(tenant, frame, label):
    # In this project the kept boxes were about 60 pixels a side; the slivers and the
    # near-whole-frame segments, scored alike, never were.
    rng = np.random.default_rng(0)
    rows = []
    for score in rng.uniform(0.3, 0.9, 240):
        kind = rng.integers(3)
        side = {0: 60.0, 1: 6.0, 2: 330.0}[int(kind)]
        rows.append(ProposalOutcome(
            project=tenant.project, frame=frame, source="candidate", score=float(score), box=[10, 10, 10 + side, 10 + side],
            shown=True, useful=bool(kind == 0 and rng.uniform() < 0.8), label_right=True, box_right=True,
            decided_at=frame.created_at,
        ))
    ProposalOutcome.objects.bulk_create(rows)
    policy = proposing.show_policy(project_id=tenant.project.pk)
    same_score = [proposal((0, 0, 60, 60), 0.6, label), proposal((0, 0, 6, 6), 0.6, label), proposal((0, 0, 330, 330), 0.6, label)]

    shown, chance = proposing.choose_shown(same_score, policy, shot_labelled=False, frame_size=(640, 360))

    assert shown[0] == 0 and 1 not in shown
    assert chance[0] > 0.5 > policy.break_even > chance[1] and chance[0] > 2 * chance[2]
    assert set(policy.as_dict()["shape"]) == {"candidate"}


def test_the_history_teaches_which_candidates_beside_followed_boxes_are_objects(tenant, label):
    # Beside a confidently followed object, candidates scored alike: those inside it (a part
    # of it) were never kept, those in free space (an object the labels did not carry) often.
    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        frame = FrameFactory(project=tenant.project, width=640, height=360)
        rows += [
            ProposalOutcome(
                project=tenant.project, frame=frame, source=source, shot_labelled=True, score=score, box=box,
                shown=True, useful=useful, label_right=True, box_right=True, decided_at=frame.created_at,
            )
            for source, score, box, useful in (
                ("propagation", 0.9, [100, 100, 200, 200], True),
                ("candidate", float(rng.uniform(0.4, 0.6)), [110, 110, 160, 160], False),
                ("candidate", float(rng.uniform(0.4, 0.6)), [400, 100, 450, 150], i % 2 == 0),
            )
        ]
    ProposalOutcome.objects.bulk_create(rows)
    policy = proposing.show_policy(project_id=tenant.project.pk)
    proposals = [
        proposal((100, 100, 200, 200), 0.9, label, source="propagation"),
        proposal((120, 120, 170, 170), 0.5, label),  # inside the followed object
        proposal((300, 200, 350, 250), 0.5, label),  # in free space
    ]

    shown, chance = proposing.choose_shown(proposals, policy, shot_labelled=True, frame_size=(640, 360))

    assert shown == [0, 2]
    assert chance[2] > 0.3 > policy.break_even > chance[1]


def test_the_history_teaches_whether_a_followed_box_outscored_by_one_of_its_label_is_kept(tenant, label):
    # Where the two sides of a frame disagree, one object is followed in twice: here the
    # weaker of the two was never kept, while a lone box of another label scored alike was.
    soup = LabelFactory(project=tenant.project, name="food.dish.soup")
    rows = []
    for i in range(40):
        frame = FrameFactory(project=tenant.project, width=640, height=360)
        rows += [
            ProposalOutcome(
                project=tenant.project, frame=frame, source="propagation", shot_labelled=True, score=score,
                label_id=label_id, box=box, shown=True, useful=useful, label_right=True, box_right=True,
                decided_at=frame.created_at,
            )
            for score, label_id, box, useful in (
                (0.8, label.pk, [100, 100, 150, 150], True),
                (0.4, label.pk, [300, 100, 350, 150], False),
                (0.4, soup.pk, [100, 250, 150, 300], i % 4 != 0),
            )
        ]
    ProposalOutcome.objects.bulk_create(rows)
    policy = proposing.show_policy(project_id=tenant.project.pk)
    proposals = [
        proposal((100, 100, 150, 150), 0.8, label, source="propagation"),
        proposal((300, 100, 350, 150), 0.4, label, source="propagation"),  # the weaker rival
        proposal((100, 250, 150, 300), 0.4, soup, source="propagation"),  # alone with its label
    ]

    shown, chance = proposing.choose_shown(proposals, policy, shot_labelled=True, frame_size=(640, 360))

    assert shown == [0, 2]
    assert chance[2] > 0.5 > policy.break_even > chance[1]


def test_a_source_whose_kept_proposals_need_fixing_must_be_likelier_to_be_shown(tenant, frame, label):
    # Both sources are kept one time in six, but a kept followed box was right as it was, a
    # kept candidate needed its label and its box fixed: it saves 1.5 s, not 8.5, so at the
    # same chance showing it costs more in rejects than it saves.
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=tenant.project, frame=frame, source=source, shot_labelled=True, score=0.5, box=[0, 0, 1, 1],
            shown=True, useful=useful, label_right=right if useful else None, box_right=right if useful else None,
            decided_at=frame.created_at,
        )
        for source, right in (("propagation", True), ("candidate", False))
        for useful in [True] * 17 + [False] * 83
    )
    policy = proposing.show_policy(project_id=tenant.project.pk)
    assert policy.break_even_of("propagation") < policy.break_even < policy.break_even_of("candidate")
    assert policy.as_dict()["break_evens"] == {
        source: round(policy.break_even_of(source), 4) for source in ("candidate", "propagation")
    }
    proposals = [proposal((0, 0, 1, 1), 0.5, label, source=source) for source in ("candidate", "propagation")]

    shown, chance = proposing.choose_shown(proposals, policy, shot_labelled=True, frame_size=(640, 360))

    assert chance == pytest.approx([0.17, 0.17], abs=0.02)
    assert shown == [1]


def test_a_source_is_calibrated_apart_on_the_first_frame_of_a_shot_and_beside_followed_boxes(tenant, frame, label):
    # Where nothing is followed, the pixels' candidates are the objects; beside followed
    # boxes, what is left of them is background. One pooled curve would hide the first kind.
    decide(tenant, frame, [(s, s > 0.6) for s in np.linspace(0.0, 0.9, 100)], shot_labelled=False)
    decide(tenant, frame, [(s, False) for s in np.linspace(0.0, 0.9, 300)], shot_labelled=True)
    policy = proposing.show_policy(project_id=tenant.project.pk)
    likely = [proposal((i * 20.0, 0, i * 20.0 + 15, 15), 0.85, label) for i in range(5)]

    assert proposing.choose_shown(likely, policy, shot_labelled=False, frame_size=(640, 360))[0] == [0, 1, 2, 3, 4]
    assert proposing.choose_shown(likely, policy, shot_labelled=True, frame_size=(640, 360))[0] == []
    assert set(policy.as_dict()["sources"]) == {"candidate", "candidate/labelled-shot"}

    store(frame, likely, [0], shot_labelled=True)
    assert set(ProposalOutcome.objects.filter(frame=frame, decided_at__isnull=True).values_list("shot_labelled", flat=True)) == {True}


def test_a_new_detectors_first_boxes_are_shown_on_a_new_shot_but_not_beside_followed_boxes(tenant, frame, label):
    # A detector promoted mid-project has no history yet. On a new shot's first frame its box
    # may be the only one on an object; in a labelled shot the followed boxes already claim
    # the objects, and its boxes there are nearly always one of them again.
    decide(tenant, frame, [(s, s > 0.3) for s in np.linspace(0.0, 0.9, 60)], source="propagation", shot_labelled=True)
    policy = proposing.show_policy(project_id=tenant.project.pk)
    assert not policy.cold
    detected = [proposal((100, 100, 160, 160), 0.9, label, source="detector")]

    assert proposing.choose_shown(detected, policy, shot_labelled=False, frame_size=(640, 360))[0] == [0]
    shown, chance = proposing.choose_shown(detected, policy, shot_labelled=True, frame_size=(640, 360))
    assert shown == [] and chance[0] == pytest.approx(proposing.LABELLED_SHOT_DETECTOR_PRIOR)


def test_the_pixels_boxes_of_a_size_no_confirmed_box_has_are_calibrated_apart(tenant, frame, label):
    # The project's people confirmed objects about 60 x 40 pixels. Beside followed boxes the
    # moving blobs were mostly two objects merged (about 300 x 130) or slivers, never kept,
    # however high they scored; the few of an object's size that scored high were kept.
    for i in range(6):
        AnnotationFactory(frame=frame, label=label, x1=10.0 * i, y1=0, x2=10.0 * i + 60 + i, y2=40)
    rng = np.random.default_rng(3)
    rows = []
    for score in rng.uniform(0.0, 0.95, 300):
        side = (300.0, 130.0) if rng.uniform() < 0.5 else (12.0, 60.0)
        rows.append((score, side, False))
    rows += [(0.8, (62.0, 41.0), True), (0.85, (58.0, 39.0), True), (0.75, (61.0, 40.0), False),
             (0.2, (60.0, 42.0), False), (0.3, (59.0, 40.0), False)]
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(project=tenant.project, frame=frame, source="motion", shot_labelled=True, score=float(score),
                        box=[100, 100, 100 + w, 100 + h], shown=False, useful=useful, label_right=True, box_right=True,
                        decided_at=frame.created_at)
        for score, (w, h), useful in rows
    )
    policy = proposing.show_policy(project_id=tenant.project.pk)
    blobs = [proposal((200, 200, 260, 241), 0.82, label, source="motion"),
             proposal((200, 200, 500, 330), 0.82, label, source="motion")]

    shown, chance = proposing.choose_shown(blobs, policy, shot_labelled=True, frame_size=(640, 360))

    assert shown == [0] and chance[0] > policy.break_even_of("motion") > chance[1]
    assert {"motion/labelled-shot", "motion/labelled-shot/odd-size"} <= set(policy.as_dict()["sources"])
    # Without the sizes, one history holds them all, and the object-sized blob is hidden too.
    pooled = proposing.fit_show_policy(ProposalOutcome.objects.filter(project=tenant.project),
                                       decisions=len(rows))
    assert proposing.choose_shown(blobs, pooled, shot_labelled=True, frame_size=(640, 360))[0] == []


def test_a_box_another_source_found_too_is_calibrated_on_its_own_history(tenant, frame, label):
    # On this project's new shots the segments found alone were seldom objects, those a moving
    # blob or a template match found too nearly always: one curve of the score would hide both.
    rows = [(score, False, score > 0.85) for score in np.linspace(0.0, 0.9, 600)]
    rows += [(score, True, True) for score in np.linspace(0.2, 0.5, 12)] + [(0.3, True, False)] * 2
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(project=tenant.project, frame=frame, source="candidate", shot_labelled=False,
                        score=float(score), box=[0, 0, 1, 1], shown=False, useful=bool(useful), backed=backed,
                        label_right=True, box_right=True, decided_at=frame.created_at)
        for score, backed, useful in rows
    )
    policy = proposing.show_policy(project_id=tenant.project.pk)
    alone = proposal((10, 10, 60, 60), 0.4, label)
    backed = RegionProposal(box=(100, 10, 150, 60), score=0.4, source="candidate", suggestions=alone.suggestions,
                            backed=True)

    shown, chance = proposing.choose_shown([alone, backed], policy, shot_labelled=False, frame_size=(640, 360))

    assert shown == [1] and chance[1] > 0.6 > policy.break_even_of("candidate") > chance[0]
    # Their own history, and still their source's.
    assert policy.calibrations["candidate/backed"].decisions == 14
    assert policy.calibrations["candidate"].decisions == 600 + 14
    # A backed box of a size no confirmed box has stays with the odd sizes.
    assert proposing.calibration_stratum("candidate", False, odd_size=True, backed=True) == "candidate/odd-size"
    assert proposing.source_prior("candidate", False, backed=True) == proposing.BACKED_PRIOR
    assert proposing.source_prior("candidate", False, odd_size=True, backed=True) < proposing.BACKED_PRIOR

    store(frame, [alone, backed], [1])
    recorded = ProposalOutcome.objects.filter(frame=frame, decided_at__isnull=True).order_by("id")
    assert [(o.shown, o.backed) for o in recorded] == [(False, False), (True, True)]


def test_a_project_without_confirmed_boxes_has_no_odd_sizes_and_a_detectors_boxes_never_are(tenant, frame, label):
    blob = proposal((0, 0, 600, 300), 0.5, label, source="motion")
    detected = proposal((0, 0, 600, 300), 0.5, label, source="detector")
    assert not proposing.show_policy(project_id=tenant.project.pk).odd_sized(["motion"], [blob.box], (640, 360)).any()

    for i in range(proposing.OBJECT_SIZES_MIN):
        AnnotationFactory(frame=frame, label=label, x1=0, y1=0, x2=60, y2=40)
    proposing.clear_caches()  # the policy is cached until decisions change
    policy = proposing.show_policy(project_id=tenant.project.pk)

    assert policy.odd_sized(["motion", "detector"], [blob.box, detected.box], (640, 360)).tolist() == [True, False]


def test_the_policy_and_the_number_shown_are_visible_to_admins_only(tenant, frame, label):
    store(frame, [proposal((10, 10, 60, 60), 0.9, label), proposal((100, 100, 150, 150), 0.1, label)], [0])
    decide(tenant, FrameFactory(project=tenant.project), [(0.9, True)] * 20 + [(0.1, False)] * 20)
    path = api_path(tenant, f"projects/{tenant.project.pk}/proposal-policy")
    assert tenant.client("annotator").get(path).status_code == 403
    body = tenant.client("admin").get(path).json()
    assert body["decisions"] == 40 and body["cold"] is False
    assert body["recent_frames"] == 2 and body["shown_per_frame"] == 0.5 and body["generated_per_frame"] == 21.0
    assert body["sources"]["candidate"]["curve"][0][1] < body["sources"]["candidate"]["curve"][-1][1]
    assert set(body["break_evens"]) == {"candidate"} and 0 < body["break_evens"]["candidate"] < 1
    # the chance from the score, the box features, the intercept
    assert len(body["shape"]["candidate"]["weights"]) == 2 + BOX_FEATURES


def test_each_proposal_keeps_the_chance_it_was_given_and_admins_see_whether_chances_are_borne_out(
    tenant, frame, label
):
    proposals = [proposal((10, 10, 60, 60), 0.9, label), proposal((100, 100, 150, 150), 0.1, label)]
    store(frame, proposals, [0], chances=np.array([0.8, 0.1]))
    assert sorted(ProposalOutcome.objects.filter(frame=frame).values_list("chance", flat=True)) == [0.1, 0.8]
    path = api_path(tenant, f"projects/{tenant.project.pk}/proposal-policy")
    assert tenant.client("admin").get(path).json()["honesty"] == {
        "decided": 0, "expected_useful": 0.0, "useful": 0, "brier": None,
    }

    # Decided: the likely one was kept, the unlikely one was right to be hidden.
    ProposalOutcome.objects.filter(frame=frame, chance=0.8).update(decided_at=frame.created_at, useful=True)
    ProposalOutcome.objects.filter(frame=frame, chance=0.1).update(decided_at=frame.created_at, useful=False)
    honesty = tenant.client("admin").get(path).json()["honesty"]

    assert honesty == {"decided": 2, "expected_useful": 0.9, "useful": 1, "brier": 0.025}


def test_a_frame_opened_with_stale_proposals_gets_fresh_ones_before_anything_is_shown(tenant, frame, label, monkeypatch):
    refreshed = []
    monkeypatch.setattr(proposing, "refresh_frame_soon", lambda *, frame_id: refreshed.append(frame_id))
    store(frame, [proposal((10, 10, 60, 60), 0.9, label)], [0])
    FrameProposals.objects.create(frame=frame, built_at_change=learning_clock_read(project_id=tenant.project.pk))
    other = FrameFactory(project=tenant.project, width=640, height=360)
    annotation_create(frame=other, actor=tenant.annotator, box=Box(1, 1, 20, 20), label=label)  # the loop learns

    opened = frame_assign_next(organization=tenant.organization, project=tenant.project, user=tenant.annotator)

    assert opened.pk == frame.pk and refreshed == [frame.pk]
    detail = tenant.client("annotator").get(api_path(tenant, f"frames/{frame.pk}")).json()
    assert detail["proposals_state"] == "refreshing"
    assert detail["proposals_index_version"] < detail["index_version"]
    assert [a for a in detail["annotations"] if a["status"] == "proposed"] == []


def test_a_refresh_begun_before_the_frame_was_opened_leaves_the_persons_request_pending(
    tenant, frame, label, monkeypatch
):
    # The worker reads the learning clock; meanwhile the person confirms a box (the loop
    # learns) and opens this frame, asking for newer proposals. The older refresh then lands:
    # it must not answer their request, or they stop waiting and see proposals built before it.
    refreshed = []
    monkeypatch.setattr(proposing, "refresh_frame_soon", lambda *, frame_id: refreshed.append(frame_id))
    monkeypatch.setattr(proposing, "frame_candidates_cached", lambda *args, **kwargs: None)
    other = FrameFactory(project=tenant.project, width=640, height=360)

    def propose(rgb, **kwargs):
        annotation_create(frame=other, actor=tenant.annotator, box=Box(1, 1, 20, 20), label=label)
        opened = frame_assign_next(organization=tenant.organization, project=tenant.project, user=tenant.annotator)
        assert opened.pk == frame.pk
        return []

    monkeypatch.setattr(proposing.ml, "propose", propose)
    proposing.proposals_refresh(frame_id=frame.pk, force=True)

    assert refreshed == [frame.pk]
    state = proposing.frame_proposals_state(frame=frame)
    assert state["proposals_state"] == "refreshing"
    assert state["proposals_index_version"] < state["index_version"]


def test_a_refresh_records_the_chance_the_policy_gave_each_proposal(tenant, frame, label, monkeypatch):
    made = [proposal((10, 10, 60, 60), 0.9, label), proposal((300, 10, 350, 60), 0.2, label, source="motion")]
    monkeypatch.setattr(proposing, "frame_candidates_cached", lambda *args, **kwargs: None)
    monkeypatch.setattr(proposing.ml, "propose", lambda rgb, **kwargs: made)
    decide(tenant, FrameFactory(project=tenant.project), [(s, s > 0.5) for s in np.linspace(0.0, 0.9, 60)])
    policy = proposing.show_policy(project_id=tenant.project.pk)

    proposing.proposals_refresh(frame_id=frame.pk, force=True)

    expected = proposing.proposal_chances(
        policy, [p.source for p in made], [p.score for p in made], [p.box for p in made],
        [p.label_id if p.label_id is not None else -1 for p in made], shot_labelled=False,
        frame_size=(frame.width, frame.height),
    )
    recorded = dict(ProposalOutcome.objects.filter(frame=frame).values_list("source", "chance"))
    assert [recorded["candidate"], recorded["motion"]] == pytest.approx(expected.tolist())
    assert recorded["candidate"] > 0.5  # the history says high-scoring candidates are kept


def test_a_refresh_of_a_held_frame_keeps_the_proposals_the_person_sees(tenant, frame, label):
    store(frame, [proposal((10, 10, 60, 60), 0.5, label), proposal((300, 10, 350, 60), 0.5, label)], [0, 1])
    seen = {a.pk: a.version for a in Annotation.objects.filter(frame=frame)}
    Frame.objects.filter(pk=frame.pk).update(assigned_to=tenant.annotator)

    # The refresh finds one of them again (moved a little) and a new object, but not the other.
    store(frame, [proposal((12, 10, 62, 60), 0.9, label), proposal((500, 10, 550, 60), 0.9, label)], [0, 1], held=True)

    after = {a.pk: a for a in Annotation.objects.filter(frame=frame)}
    assert set(seen) <= set(after), "a proposal the person may be looking at was deleted"
    assert all(after[pk].version == version for pk, version in seen.items())
    assert len(after) == 3
    moved = next(a for a in after.values() if a.pk in seen and a.x1 == 12)
    # The person's accept, sent with the version they saw, still applies.
    annotation_confirm(annotation=moved, actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=seen[moved.pk])


def test_a_refresh_landing_after_the_person_acted_keeps_their_decisions(tenant, frame, label):
    store(frame, [proposal((10, 10, 60, 60), 0.9, label, source="propagation"),
                  proposal((300, 10, 350, 60), 0.8, label, source="propagation"),
                  proposal((500, 10, 550, 60), 0.1, label)], [0, 1])
    Frame.objects.filter(pk=frame.pk).update(assigned_to=tenant.annotator)
    accepted, rejected = Annotation.objects.filter(frame=frame).order_by("x1")
    annotation_confirm(annotation=accepted, actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=accepted.version)
    rejected.status = AnnotationStatus.REJECTED
    rejected.save()

    # A refresh that read the frame before those actions stores after them: the accepted box
    # again (a copy), a new object, and a hidden box on nothing.
    store(frame, [proposal((11, 10, 61, 60), 0.95, label, source="propagation"),
                  proposal((200, 200, 250, 250), 0.9, label, source="propagation"),
                  proposal((400, 300, 450, 350), 0.05, label)], [0, 1], held=True)

    outcomes = {tuple(o.box[:2]): o for o in ProposalOutcome.objects.filter(frame=frame)}
    assert set(outcomes) == {(10, 10), (300, 10), (200, 200), (400, 300)}
    assert outcomes[(10, 10)].shown and outcomes[(10, 10)].annotation_id == accepted.pk
    assert outcomes[(300, 10)].shown and outcomes[(300, 10)].annotation_id == rejected.pk
    assert outcomes[(200, 200)].shown and not outcomes[(400, 300)].shown

    frame_complete(frame=frame, actor=tenant.annotator, actor_role=Role.ANNOTATOR)
    for outcome in outcomes.values():
        outcome.refresh_from_db()
    assert outcomes[(10, 10)].useful and outcomes[(10, 10)].box_right  # accepted as shown: a kept followed box
    assert outcomes[(300, 10)].useful is False


@pytest.mark.django_db(transaction=True)
def test_a_refresh_racing_an_accept_loses_nothing(tenant, frame, label):
    import threading

    store(frame, [proposal((10, 10, 60, 60), 0.5, label)], [0])
    shown = Annotation.objects.get(frame=frame)
    Frame.objects.filter(pk=frame.pk).update(assigned_to=tenant.annotator)
    barrier = threading.Barrier(2)
    errors = []

    def accept():
        barrier.wait()
        try:
            annotation_confirm(annotation=shown, actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=shown.version)
        except Exception as error:  # noqa: BLE001 - any failure is a lost action
            errors.append(error)

    def refresh():
        from django.db import transaction

        barrier.wait()
        with transaction.atomic():
            locked = Frame.objects.select_for_update().get(pk=frame.pk)
            store(locked, [proposal((11, 10, 61, 60), 0.9, label)], [0], held=True)

    threads = [threading.Thread(target=accept), threading.Thread(target=refresh)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    from django.db import connections

    connections.close_all()
    assert errors == []
    shown.refresh_from_db()
    assert shown.status == AnnotationStatus.CONFIRMED
    assert Annotation.objects.filter(frame=frame).count() == 1  # the accepted box, not a duplicate of it


def test_beat_resends_a_refresh_whose_message_was_lost(tenant, frame, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from workers import maintenance

    waiting = FrameProposals.objects.create(frame=frame, refresh_requested_at=timezone.now() - timedelta(minutes=1))
    FrameProposals.objects.create(frame=FrameFactory(project=tenant.project), refresh_requested_at=timezone.now())
    sent = []
    monkeypatch.setattr("labeller.core.tasks.publish", lambda name, *args, **kw: sent.append((name, args)) or True)

    assert maintenance.enqueue_overdue_frame_refreshes() == 1
    assert sent == [("workers.proposals.refresh_frame_proposals", (waiting.frame_id,))]


def test_stills_and_new_shots_look_for_more_of_what_people_confirmed_and_labelled_shots_do_not(tenant, label):
    from tests.factories import VideoFactory

    still = FrameFactory(project=tenant.project, width=64, height=48)
    other_still = FrameFactory(project=tenant.project, width=64, height=48)
    annotation_create(frame=other_still, actor=tenant.annotator, box=Box(8, 8, 30, 30), label=label)

    crops = proposing._exemplars(still, shot_labelled=False)
    assert len(crops) == 1 and crops[0][1] == label.pk and crops[0][0].shape[:2] == (22, 22)
    video_frame = FrameFactory(project=tenant.project, video=VideoFactory(project=tenant.project))
    # A labelled shot's confirmed boxes are followed into the frame instead.
    assert proposing._exemplars(video_frame, shot_labelled=True) == []
    assert [label_id for _, label_id in proposing._exemplars(video_frame, shot_labelled=False)] == [label.pk]
    assert FrameProposals.objects.count() == 0


def test_a_new_shot_looks_for_every_label_people_confirmed_not_only_the_latest_few(tenant):
    # A counter's taxonomy has ten or so labels; searching only the latest six left the
    # objects of the others on a new shot to the class-agnostic candidates and their
    # often wrong index labels (bench/ASSIST.md, session 44).
    labels = [LabelFactory(project=tenant.project) for _ in range(10)]
    for label in labels:
        other = FrameFactory(project=tenant.project, width=64, height=48)
        annotation_create(frame=other, actor=tenant.annotator, box=Box(8, 8, 30, 30), label=label)

    crops = proposing._exemplars(FrameFactory(project=tenant.project, width=64, height=48), shot_labelled=False)

    assert sorted(label_id for _, label_id in crops) == sorted(label.pk for label in labels)


def test_boxes_are_followed_from_the_nearest_labelled_frames_with_the_seconds_between_them(tenant, label):
    # The tracker searches further and over more scales the further apart the frames are.
    from tests.factories import AnnotationFactory, ShotFactory, VideoFactory

    video = VideoFactory(project=tenant.project, fps=10.0, frame_count=200)
    shot = ShotFactory(video=video, start_frame=0, end_frame=200)
    frame = FrameFactory(project=tenant.project, video=video, shot=shot, index=100)
    for index in (70, 125, 180):
        AnnotationFactory(frame=FrameFactory(project=tenant.project, video=video, shot=shot, index=index), label=label)
    FrameFactory(project=tenant.project, video=video, shot=shot, index=101)  # nothing confirmed there

    neighbours = proposing._neighbours(frame)

    assert [n.seconds_apart for n in neighbours] == [2.5, 3.0]
    assert [n.label_ids.tolist() for n in neighbours] == [[label.pk], [label.pk]]


def test_the_refresh_ranks_overlapping_proposals_by_chance_only_on_a_labelled_shot_with_history(
    tenant, label, monkeypatch
):
    # Followed boxes and candidates score on different scales, so there the policy's
    # calibrated chance decides which of two overlapping boxes stays. On stills, measured on
    # BCCD, the raw score does better; and a cold policy's chances are bare priors.
    from django.utils import timezone

    from tests.factories import AnnotationFactory, ShotFactory, VideoFactory

    video = VideoFactory(project=tenant.project, fps=10.0, frame_count=200)
    shot = ShotFactory(video=video, start_frame=0, end_frame=200)
    followed = FrameFactory(project=tenant.project, video=video, shot=shot, index=100, width=640, height=360)
    AnnotationFactory(frame=FrameFactory(project=tenant.project, video=video, shot=shot, index=110), label=label)
    still = FrameFactory(project=tenant.project, width=640, height=360)
    asked = []

    def propose(rgb, **kwargs):
        asked.append(kwargs["chance"])
        return []

    monkeypatch.setattr(proposing, "frame_candidates_cached", lambda *args, **kwargs: None)
    monkeypatch.setattr(proposing.ml, "propose", propose)
    proposing.proposals_refresh(frame_id=followed.pk, force=True)  # cold: no history yet
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=tenant.project, frame=still, source=source, shot_labelled=True, score=0.6, box=[10, 10, 60, 60],
            shown=True, useful=(i % 5 != 0) == (source == "propagation"), decided_at=timezone.now(),
        )
        for source in ("propagation", "candidate") for i in range(proposing.WARM_AFTER_DECISIONS)
    )
    proposing.proposals_refresh(frame_id=followed.pk, force=True)
    proposing.proposals_refresh(frame_id=still.pk, force=True)

    cold, chance, on_still = asked
    assert cold is None and on_still is None
    policy = proposing.show_policy(project_id=tenant.project.pk)
    assert not policy.cold
    boxes = np.array([[10, 10, 60, 60], [12, 10, 62, 60]], np.float32)
    # the candidate lies 96 % inside the followed box, whose score is 0.6
    expected = [policy.probability(source, True, [0.6], box_features([box], [(640, 360)], [cover]))[0]
                for source, box, cover in zip(("propagation", "candidate"), boxes, (0.0, 0.96 * 0.6))]
    sources, labels = np.array(["propagation", "candidate"]), np.array([label.pk, label.pk])
    assert chance(sources, np.array([0.6, 0.6]), boxes, labels).tolist() == pytest.approx(expected)
    assert expected[0] > 0.5 > expected[1]  # here followed boxes were kept, candidates rejected


def test_a_segment_that_may_be_an_object_the_tracker_lost_is_calibrated_on_its_own_history(
    tenant, label, monkeypatch
):
    # Beside followed boxes this project's segments were never kept; but the labelled frame a
    # second away holds two hands and only one is followed here, so a hand-sized segment
    # labelled hand in free space may be the other: it starts from LOST_OBJECT_PRIOR, and the
    # project's own history of such boxes then decides.
    from django.utils import timezone

    from tests.factories import AnnotationFactory, ShotFactory, VideoFactory

    video = VideoFactory(project=tenant.project, fps=10.0, frame_count=200)
    shot = ShotFactory(video=video, start_frame=0, end_frame=200)
    frame = FrameFactory(project=tenant.project, video=video, shot=shot, index=100, width=640, height=360)
    labelled = FrameFactory(project=tenant.project, video=video, shot=shot, index=110, width=640, height=360)
    for box in ((100, 100, 160, 180), (300, 200, 356, 283)):
        AnnotationFactory(frame=labelled, label=label, x1=box[0], y1=box[1], x2=box[2], y2=box[3])
    other = LabelFactory(project=tenant.project, name="food.fruit.apple")
    still = FrameFactory(project=tenant.project, width=640, height=360)
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=tenant.project, frame=still, source=source, shot_labelled=True, score=float(score),
            box=[10, 10, 60, 60], shown=True, useful=source == "propagation", decided_at=timezone.now(),
        )
        for source in ("propagation", "candidate") for score in np.linspace(0.3, 0.9, 60)
    )
    made = [
        proposal((105, 100, 165, 180), 0.8, label, source="propagation"),
        proposal((400, 50, 458, 132), 0.7, label),  # the other hand's size, free, labelled hand
        proposal((400, 200, 458, 282), 0.7, other),  # the same, labelled apple
    ]
    monkeypatch.setattr(proposing, "frame_candidates_cached", lambda *args, **kwargs: None)
    monkeypatch.setattr(proposing.ml, "propose", lambda rgb, **kwargs: made)

    proposing.proposals_refresh(frame_id=frame.pk, force=True)

    outcomes = {tuple(o.box[:2]): o for o in ProposalOutcome.objects.filter(frame=frame)}
    assert [(o.shown, o.lost_object) for o in outcomes.values()] == [(True, False), (True, True), (False, False)]
    assert outcomes[(400, 50)].chance == pytest.approx(proposing.LOST_OBJECT_PRIOR, abs=0.01)
    assert outcomes[(400, 200)].chance < 0.05

    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=tenant.project, frame=still, source="candidate", shot_labelled=True, score=0.7,
            box=[10, 10, 68, 92], shown=True, useful=False, lost_object=True, decided_at=timezone.now(),
        )
        for _ in range(10)
    )
    proposing.proposals_refresh(frame_id=frame.pk, force=True)

    again = {tuple(o.box[:2]): o for o in ProposalOutcome.objects.filter(frame=frame)}
    assert again[(400, 50)].lost_object and not again[(400, 50)].shown
    # Their own history, and still their source's: the segments beside followed boxes.
    calibrations = proposing.show_policy(project_id=tenant.project.pk).calibrations
    assert calibrations["candidate/labelled-shot/lost-object"].decisions == 10
    assert calibrations["candidate/labelled-shot"].decisions == 60 + 10


def test_a_labels_followed_boxes_move_by_the_edge_bias_its_fixes_show(tenant, frame, label, monkeypatch):
    # This project's followed knives end short of their tip: people fixed those far enough
    # off by moving the right edge out, and accepted the others as shown.
    from django.utils import timezone

    from tests.factories import AnnotationFactory

    knife, other = LabelFactory(project=tenant.project, name="tool.knife"), label
    rng = np.random.default_rng(3)
    labelled = FrameFactory(project=tenant.project, width=640, height=360)
    for short in 0.12 + rng.normal(0.0, 0.04, 40):
        followed = [100.0, 100.0, 200.0, 120.0]
        truth = [100.0, 100.0, 200.0 + 100.0 * short, 120.0]
        accepted = short <= 0.08
        kept = AnnotationFactory(frame=labelled, label=knife, source="propagation",
                                 **dict(zip(("x1", "y1", "x2", "y2"), followed if accepted else truth)))
        ProposalOutcome.objects.create(
            project=tenant.project, frame=labelled, annotation_id=kept.pk, source="propagation", shot_labelled=True,
            score=0.8, label_id=knife.pk, box=followed, shown=True, useful=True, label_right=True,
            box_right=bool(accepted), decided_at=timezone.now(),
        )
    made = [
        proposal((300, 200, 400, 220), 0.8, knife, source="propagation"),
        proposal((10, 10, 60, 60), 0.8, other, source="propagation"),
        proposal((300, 250, 400, 270), 0.8, knife, source="candidate"),
    ]
    monkeypatch.setattr(proposing, "frame_candidates_cached", lambda *args, **kwargs: None)
    monkeypatch.setattr(proposing.ml, "propose", lambda rgb, **kwargs: made)

    policy = proposing.show_policy(project_id=tenant.project.pk)
    proposing.proposals_refresh(frame_id=frame.pk, force=True)

    assert list(policy.edge_bias) == [knife.pk]
    assert policy.edge_bias[knife.pk][2] == pytest.approx(0.12, abs=0.03)
    assert np.abs(policy.edge_bias[knife.pk][[0, 1, 3]]).max() <= 0.02
    outcomes = {(o.source, o.label_id): o for o in ProposalOutcome.objects.filter(frame=frame)}
    moved = outcomes[("propagation", knife.pk)]
    assert moved.box_as_followed == [300, 200, 400, 220]
    assert moved.box[2] == pytest.approx(400 + 100 * policy.edge_bias[knife.pk][2])
    assert moved.box[:2] == [300, 200]
    # Another label's followed box, and a box the pixels found, are as they were made.
    assert outcomes[("propagation", other.pk)].box == [10, 10, 60, 60]
    assert outcomes[("candidate", knife.pk)].box == [300, 250, 400, 270]
    assert outcomes[("candidate", knife.pk)].box_as_followed is None
    assert str(knife.pk) in proposing.proposal_policy_summary(project_id=tenant.project.pk)["edge_bias"]
