"""The learning loop on a real ingested synthetic video: confirmed boxes teach the index,
and the next frames of the shot get correct boxes with correct labels."""

import numpy as np
import pytest

from labeller.annotations.models import Annotation, AnnotationSource, AnnotationStatus, Label
from labeller.annotations.services import Box, annotation_create, annotation_reject, frame_complete
from labeller.media.models import Frame
from labeller.tenants.models import Role
from labeller.training import proposing, services
from labeller.training.models import ProjectIndex
from proposals.boxes import iou_matrix
from tests.conftest import api_path
from tests.pipeline import ingest_synthetic, make_synthetic

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("learning"), seconds=8, n_shots=2, seed=11, objects_per_shot=2)


@pytest.fixture
def ingested(tenant, synthetic):
    for name in synthetic.classes:
        Label.objects.get_or_create(project=tenant.project, name=name)
    video = ingest_synthetic(tenant.project, tenant.admin, synthetic)
    return video


def confirm_ground_truth(frame: Frame, synthetic, actor) -> list[Annotation]:
    labels = dict(Label.objects.filter(project=frame.project).values_list("name", "pk"))
    return [
        annotation_create(frame=frame, actor=actor, box=Box(*gt.box), label=Label.objects.get(pk=labels[gt.label]))
        for gt in synthetic.boxes[frame.index]
    ]


def test_confirmed_boxes_make_correct_proposals_appear_on_the_next_frames_of_the_shot(tenant, ingested, synthetic):
    frames = list(Frame.objects.filter(video=ingested).order_by("index"))
    first, following = frames[0], [f for f in frames[1:] if f.shot_id == frames[0].shot_id][:2]
    assert following, "the synthetic shot should hold several candidate frames"
    confirm_ground_truth(first, synthetic, tenant.annotator)
    Frame.objects.filter(pk=first.pk).update(assigned_to=tenant.annotator)  # the frame is theirs
    frame_complete(frame=first, actor=tenant.annotator, actor_role=Role.ANNOTATOR)

    result = services.index_sync(project_id=tenant.project.pk)
    assert result.added == len(synthetic.boxes[first.index]) and result.size == result.added
    assert services.index_sync(project_id=tenant.project.pk).added == 0  # idempotent

    labels = dict(Label.objects.filter(project=tenant.project).values_list("pk", "name"))
    for frame in following:
        assert proposing.proposals_refresh(frame_id=frame.pk) > 0
        proposals = list(Annotation.objects.filter(frame=frame, status=AnnotationStatus.PROPOSED))
        truth = synthetic.boxes[frame.index]
        overlaps = iou_matrix(
            np.array([gt.box for gt in truth], np.float32), np.array([[p.x1, p.y1, p.x2, p.y2] for p in proposals], np.float32)
        )
        for row, gt in enumerate(truth):
            best = proposals[int(overlaps[row].argmax())]
            assert overlaps[row].max() >= 0.5, f"{gt.label} on frame {frame.index} has no proposal"
            assert labels[best.label_id] == gt.label
            assert best.source in (AnnotationSource.PROPAGATION, AnnotationSource.MODEL)


def test_proposals_never_overwrite_or_duplicate_human_work(tenant, ingested, synthetic):
    frame = Frame.objects.filter(video=ingested).order_by("index").first()
    human = confirm_ground_truth(frame, synthetic, tenant.annotator)
    services.index_sync(project_id=tenant.project.pk)
    proposing.proposals_refresh(frame_id=frame.pk)
    proposing.proposals_refresh(frame_id=frame.pk)  # twice: replaced, not accumulated
    for annotation in human:
        annotation.refresh_from_db()
        assert annotation.status == AnnotationStatus.CONFIRMED and annotation.version == 1
    proposals = Annotation.objects.filter(frame=frame, status=AnnotationStatus.PROPOSED)
    human_boxes = np.array([[a.x1, a.y1, a.x2, a.y2] for a in human], np.float32)
    for proposal in proposals:
        assert iou_matrix(np.array([[proposal.x1, proposal.y1, proposal.x2, proposal.y2]], np.float32), human_boxes).max() < 0.5


def test_a_rejected_proposal_becomes_a_hard_negative_and_is_not_proposed_again(tenant, ingested, synthetic):
    frame = Frame.objects.filter(video=ingested).order_by("index").last()
    proposing.proposals_refresh(frame_id=frame.pk)
    proposal = Annotation.objects.filter(frame=frame, status=AnnotationStatus.PROPOSED).first()
    assert proposal is not None
    annotation_reject(annotation=proposal, actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=proposal.version)
    services.index_sync(project_id=tenant.project.pk)
    state = ProjectIndex.objects.get(project=tenant.project)
    assert state.label_counts == {"-1": 1}
    proposing.proposals_refresh(frame_id=frame.pk)
    again = Annotation.objects.filter(frame=frame, status=AnnotationStatus.PROPOSED)
    box = np.array([[proposal.x1, proposal.y1, proposal.x2, proposal.y2]], np.float32)
    assert all(iou_matrix(np.array([[a.x1, a.y1, a.x2, a.y2]], np.float32), box).max() < 0.5 for a in again)


def test_the_label_picker_gets_suggestions_for_a_hand_drawn_box(tenant, ingested, synthetic):
    frames = list(Frame.objects.filter(video=ingested).order_by("index"))
    confirm_ground_truth(frames[0], synthetic, tenant.annotator)
    services.index_sync(project_id=tenant.project.pk)
    target = frames[1]
    gt = synthetic.boxes[target.index][0]
    response = tenant.client("annotator").post(
        api_path(tenant, f"frames/{target.pk}/suggest-labels"), {"box": list(gt.box)}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["suggestions"][0]["label_name"] == gt.label
    assert 0 < body["suggestions"][0]["score"] <= 1
    assert body["model"]["is_random"] is True and "random" in body["model"]["weights_description"]


def test_a_new_feature_model_starts_a_new_index(tenant, ingested, synthetic, settings):
    confirm_ground_truth(Frame.objects.filter(video=ingested).first(), synthetic, tenant.annotator)
    services.index_sync(project_id=tenant.project.pk)
    settings.LABELLER = {**settings.LABELLER, "FEATURE_BACKBONE": "squeezenet1_1"}
    result = services.index_sync(project_id=tenant.project.pk)
    assert result.added > 0  # rebuilt from scratch with the new features
    assert ProjectIndex.objects.filter(project=tenant.project).count() == 2


def test_the_feedback_panel_counts_the_annotators_day(tenant, ingested, synthetic):
    frame = Frame.objects.filter(video=ingested).order_by("index").last()
    proposing.proposals_refresh(frame_id=frame.pk)
    proposal = Annotation.objects.filter(frame=frame, status=AnnotationStatus.PROPOSED).first()
    Frame.objects.filter(pk=frame.pk).update(assigned_to=tenant.annotator)  # the frame is theirs
    client = tenant.client("annotator")
    client.post(api_path(tenant, f"annotations/{proposal.pk}/confirm"), {"version": proposal.version, "label_id": Label.objects.filter(project=tenant.project).first().pk}, format="json")
    client.post(api_path(tenant, f"frames/{frame.pk}/complete"))
    stats = client.get(api_path(tenant, f"projects/{tenant.project.pk}/stats/me")).json()
    rejected = Annotation.objects.filter(frame=frame, status=AnnotationStatus.REJECTED).count()
    assert stats["proposals_accepted"] == 1 and stats["proposals_rejected"] == rejected
    assert stats["frames_today"] == 1 and stats["boxes_today"] == 1
    assert stats["acceptance_rate"] == pytest.approx(1 / (1 + rejected))
    assert stats["model"]["is_random"] is True


def test_the_bridge_uses_the_librarys_background_label():
    from labeller import ml
    from proposals.labels import BACKGROUND

    assert ml.BACKGROUND == BACKGROUND


def test_before_anything_is_confirmed_only_a_few_proposals_are_shown(tenant, ingested):
    frame = Frame.objects.filter(video=ingested).order_by("index").first()
    count = proposing.proposals_refresh(frame_id=frame.pk)
    assert 0 < count <= proposing.COLD_START_SHOWN


def test_a_refresh_reuses_the_frames_candidates_and_their_embeddings(tenant, ingested, monkeypatch):
    from labeller import ml

    frame = Frame.objects.filter(video=ingested).order_by("index").first()
    computed = []
    real = ml.frame_candidates
    def counting(rgb, weights=None, others=()):
        computed.append(frame.pk)
        return real(rgb, weights, others)

    monkeypatch.setattr(ml, "frame_candidates", counting)

    proposing.proposals_refresh(frame_id=frame.pk)
    proposing.proposals_refresh(frame_id=frame.pk, force=True)

    assert computed == [frame.pk]


def _middle_frame_of_a_shot(video) -> Frame:
    """A frame with seconds of its shot on each side of it."""
    frames = list(Frame.objects.filter(video=video).select_related("shot").order_by("index"))
    return max(frames, key=lambda f: min(f.index - f.shot.start_frame, f.shot.end_frame - f.index))


@pytest.fixture(scope="module")
def roaming(tmp_path_factory):
    """Objects that roam the frame, each moving by about its size in a second or two."""
    return make_synthetic(
        tmp_path_factory.mktemp("roaming"), seconds=8, n_shots=1, seed=5, objects_per_shot=4, look="counter",
        width=320, height=180,
    )


def test_a_video_frames_candidates_include_the_objects_moving_around_it(tenant, roaming):
    from labeller.media.files import read_frame_rgb

    video = ingest_synthetic(tenant.project, tenant.admin, roaming)
    frame = _middle_frame_of_a_shot(video)

    candidates = proposing.frame_candidates_cached(frame, read_frame_rgb(frame))

    moving = candidates.boxes[candidates.sources == "motion"]
    truth = np.array([gt.box for gt in roaming.boxes[frame.index]], np.float32)
    overlap = iou_matrix(truth, moving)
    assert len(truth) == 4
    # Objects that touch merge into one moving blob; the others are found as they are, and
    # nothing of the scenery moves once the camera's pan and zoom are taken out.
    assert (overlap.max(axis=1) >= 0.6).sum() >= 2
    assert (overlap.max(axis=0) >= 0.3).all()


def test_candidates_go_on_without_motion_when_the_video_cannot_be_read(tenant, ingested, synthetic):
    from labeller.media.files import read_frame_rgb

    frame = _middle_frame_of_a_shot(ingested)
    ingested.file.storage.delete(ingested.file.name)

    candidates = proposing.frame_candidates_cached(frame, read_frame_rgb(frame))

    assert len(candidates.boxes) and set(candidates.sources) == {"candidate"}


def test_a_labelled_frames_boxes_are_followed_through_the_video_frames_between(tenant, ingested, synthetic):
    from labeller.media.video import decode_frames_at
    from proposals.tracking import FLOW_STEP_SECONDS, frames_between

    shot = list(Frame.objects.filter(video=ingested).order_by("index"))
    shot = [f for f in shot if f.shot_id == shot[0].shot_id]
    labelled, later = shot[0], shot[2]
    confirm_ground_truth(labelled, synthetic, tenant.annotator)

    [neighbour] = proposing._neighbours(later)

    wanted = frames_between(labelled.index, later.index, FLOW_STEP_SECONDS * ingested.fps)
    assert len(wanted) >= 5 and wanted == sorted(wanted) and wanted[0] > labelled.index
    decoded = decode_frames_at(synthetic.path, wanted)
    assert [frame.shape for frame in neighbour.between] == [(later.height, later.width, 3)] * len(wanted)
    for frame, index in zip(neighbour.between, wanted, strict=True):
        differences = {number: np.abs(frame.astype(int) - image).mean() for number, image in decoded.items()}
        assert min(differences, key=differences.get) == index  # the frames wanted, in order from the labelled one


def test_boxes_are_followed_in_fewer_steps_on_large_frames_and_in_one_jump_when_too_far_or_the_video_is_gone(
    tenant, ingested, synthetic, monkeypatch
):
    shot = list(Frame.objects.filter(video=ingested).order_by("index"))
    shot = [f for f in shot if f.shot_id == shot[0].shot_id]
    labelled, later = shot[0], shot[2]
    confirm_ground_truth(labelled, synthetic, tenant.annotator)
    assert proposing._neighbours(later)[0].between

    monkeypatch.setattr(proposing, "FOLLOW_THROUGH_MAX_PIXELS", 4 * later.width * later.height)
    assert len(proposing._neighbours(later)[0].between) == 4  # in longer steps, to bound the memory held
    monkeypatch.setattr(proposing, "FOLLOW_THROUGH_MAX_SECONDS", 1.5)
    assert proposing._neighbours(later)[0].between == []
    monkeypatch.undo()
    ingested.file.storage.delete(ingested.file.name)
    assert proposing._neighbours(later)[0].between == []
    assert proposing.proposals_refresh(frame_id=later.pk) > 0


def test_the_frames_between_of_every_labelled_neighbour_are_decoded_in_one_pass(
    tenant, ingested, synthetic, monkeypatch
):
    from labeller.media import files

    shot = list(Frame.objects.filter(video=ingested).order_by("index"))
    shot = [f for f in shot if f.shot_id == shot[0].shot_id]
    for labelled in (shot[0], shot[1]):
        confirm_ground_truth(labelled, synthetic, tenant.annotator)
    passes = []
    real = files.decode_frames_at

    def counting(path, indices):
        passes.append(sorted(indices))
        return real(path, indices)

    monkeypatch.setattr(files, "decode_frames_at", counting)
    nearer, further = proposing._neighbours(shot[2])

    assert len(passes) == 1
    assert 0 < len(nearer.between) < len(further.between)
    assert nearer.between[-1] is further.between[-1]  # the frame next to shot[2], decoded once for both


def test_on_object_storage_a_video_is_copied_once_for_every_refresh_that_decodes_its_frames(
    tenant, ingested, synthetic, monkeypatch, tmp_path
):
    from labeller.media import files
    from labeller.media.models import Video
    from tests.labeller.media.test_local_copies import CountingStorage

    shot = list(Frame.objects.filter(video=ingested).order_by("index"))
    shot = [f for f in shot if f.shot_id == shot[0].shot_id]
    confirm_ground_truth(shot[0], synthetic, tenant.annotator)
    (on_disk,) = proposing._neighbours(shot[2])

    storage = CountingStorage()
    with ingested.file.open("rb") as handle:
        storage.files[ingested.file.name] = handle.read()
    monkeypatch.setattr(Video._meta.get_field("file"), "storage", storage)
    monkeypatch.setattr(files, "video_copies", files.LocalCopies(max_bytes=10**9, root=tmp_path / "copies"))
    refreshes = [proposing._neighbours(Frame.objects.get(pk=shot[2].pk)) for _ in range(3)]

    assert storage.opened == [ingested.file.name]
    for (neighbour,) in refreshes:
        assert len(neighbour.between) == len(on_disk.between) > 0
        assert all(np.array_equal(a, b) for a, b in zip(neighbour.between, on_disk.between))
