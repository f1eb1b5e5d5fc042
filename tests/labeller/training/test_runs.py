"""Retraining runs: a real (tiny) detector trained on complete frames, evaluated per label,
promoted only when not worse, used by the proposals, and started, cancelled, promoted and
rolled back by admins only."""

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from labeller import ml
from labeller.annotations.models import Annotation, AnnotationStatus, Label
from labeller.media.models import Frame, FrameStatus
from labeller.training import feature_models, proposing, runs, services
from labeller.training.clock import learning_clock_read
from labeller.training.models import FrameProposals, ProjectLearning, ProposalOutcome, RunState, RunTrigger, TrainingRun
from labeller.training.proposing import proposals_refresh
from proposals.boxes import iou_matrix
from proposals.training.data import Split, split_of
from proposals.training.refiner import refine_boxes, train_box_refiner
from tests.concurrency import in_parallel
from tests.conftest import api_path
from tests.factories import FrameFactory
from tests.pipeline import ingest_synthetic, make_synthetic
from tests.training_data import labelled_frames

pytestmark = pytest.mark.django_db


def start(tenant, role="admin"):
    return tenant.client(role).post(api_path(tenant, f"projects/{tenant.project.pk}/training-runs/"))


def trained(tenant) -> TrainingRun:
    response = start(tenant)
    assert response.status_code == 202, response.content
    return runs.training_run_execute(run_id=response.json()["id"])


def test_a_run_trains_on_complete_frames_evaluates_per_label_and_promotes_the_first_model(tenant, settings):
    labelled_frames(tenant.project, 16)
    clock_before = learning_clock_read(project_id=tenant.project.pk)
    run = trained(tenant)

    assert run.state == RunState.SUCCEEDED, run.error
    assert run.number == 1 and run.trigger == RunTrigger.MANUAL and run.requested_by == tenant.admin
    epochs = settings.LABELLER["TRAINING_EPOCHS"]
    assert [entry["epoch"] for entry in run.loss_curve] == list(range(1, epochs + 1)) and run.epochs_done == epochs
    assert all(entry["total"] > 0 for entry in run.loss_curve)
    assert run.val_frame_ids and run.train_frame_ids and not set(run.val_frame_ids) & set(run.train_frame_ids)
    assert set(run.metrics["per_label"]) == {"food.dish.dessert", "food.dish.soup"}
    assert 0.0 < run.metrics["map50"] <= 1.0
    assert run.metrics["current"] is None and run.decision == "no current model"
    assert default_storage.exists(run.artifact)
    learning = ProjectLearning.objects.get(project=tenant.project)
    assert learning.current_run == run and run.promoted_at is not None
    assert learning.notice.startswith("The model learned from")
    # Proposals built by the old model are stale now.
    assert learning_clock_read(project_id=tenant.project.pk) == clock_before + 1


def test_a_detector_run_judges_its_box_refiner_on_the_boxes_really_followed_into_its_validation_frames(
    tenant, tmp_path, monkeypatch
):
    """On a real video: the validation frames get their labelled neighbours' boxes followed into
    them, and the refiner is judged on those, the boxes it will refine."""
    synthetic = make_synthetic(tmp_path, seconds=10, n_shots=2, seed=11, objects_per_shot=3)
    labels = {name: Label.objects.get_or_create(project=tenant.project, name=name)[0] for name in synthetic.classes}
    video = ingest_synthetic(tenant.project, tenant.admin, synthetic)
    # Which frames validate is a hash of their ids, which differ between databases and runs: with
    # a fifth validating, about one run in twelve sets none of this video's 11 frames aside (one
    # PostgreSQL run did). So the project's salt is one that sets two to five of them aside, and
    # the refiner always has followed boxes to be judged on.
    frame_ids = list(Frame.objects.filter(video=video).values_list("pk", flat=True))
    salt = next(salt for salt in (f"project-{tenant.project.pk}-{attempt}" for attempt in range(1000))
                if 2 <= sum(split_of(pk, salt, runs.VALIDATION_SHARE) == Split.VALIDATION for pk in frame_ids) <= 5)
    monkeypatch.setattr(runs, "split_salt", lambda project_id: salt)
    for frame in Frame.objects.filter(video=video):
        Annotation.objects.bulk_create(
            Annotation(project=tenant.project, frame=frame, label=labels[truth.label], x1=truth.box[0], y1=truth.box[1],
                       x2=truth.box[2], y2=truth.box[3], status=AnnotationStatus.CONFIRMED)
            for truth in synthetic.boxes[frame.index]
        )
    Frame.objects.filter(video=video).update(status=FrameStatus.COMPLETE, completed_at=timezone.now())

    run = trained(tenant)

    assert run.state == RunState.SUCCEEDED, run.error
    figures = run.metrics["refiner"]
    followed = figures["followed"]
    assert 0 < followed["boxes"] <= sum(len(synthetic.boxes[Frame.objects.get(pk=pk).index]) for pk in run.val_frame_ids)
    assert followed["seconds_before"] > 0 and len(figures["loss_curve"]) == 10 and figures["on_stills"]["boxes"] == 0
    assert figures["kept"] == (figures["good_after"] > figures["good_before"]
                               and followed["seconds_after"] <= followed["seconds_before"])
    assert bool(run.refiner_artifact) == figures["kept"]


def test_on_stills_a_refiner_is_judged_on_the_boxes_proposed_there(tenant):
    """Nothing is followed into stills; the refiner moves what is proposed there (the version's
    detections and the pixels' segments), so that is what it is judged on."""
    labelled_frames(tenant.project, 16)
    run = trained(tenant)
    assert run.state == RunState.SUCCEEDED, run.error
    figures = run.metrics["refiner"]
    on_stills = figures["on_stills"]
    assert figures["followed"]["boxes"] == 0
    confirmed = Annotation.objects.filter(frame_id__in=run.val_frame_ids, status=AnnotationStatus.CONFIRMED).count()
    assert on_stills["boxes"] == confirmed > 0 and on_stills["seconds_before"] > 0
    assert figures["kept"] == (figures["good_after"] > figures["good_before"]
                               and on_stills["seconds_after"] <= on_stills["seconds_before"])
    assert bool(run.refiner_artifact) == figures["kept"]
    in_use = ProjectLearning.objects.get(project=tenant.project).current_run == run and figures["kept"]
    assert (feature_models.current_refiner(project_id=tenant.project.pk) is not None) == in_use


def test_the_refiner_of_the_version_in_use_refines_the_proposals(tenant, settings, monkeypatch):
    settings.LABELLER = {**settings.LABELLER, "REFINER_STEPS": 0}
    labelled_frames(tenant.project, 16)
    run = trained(tenant)
    assert run.metrics["refiner"] == {"kept": False, "reason": "off (LABELLER_REFINER_STEPS=0)"}
    # A refiner kept with the version (trained here on the stills' boxes).
    frames = runs._training_frames(tenant.project.pk, run.train_frame_ids)
    net = train_box_refiner(frames, steps=2, seed=0).refiner
    name = runs._save_artifact(run, lambda path: ml.save_box_refiner(net, path), kind="refiner")
    TrainingRun.objects.filter(pk=run.pk).update(refiner_artifact=name)

    refine = feature_models.current_refiner(project_id=tenant.project.pk)
    boxes, confidence = np.array([[10, 10, 40, 40], [50, 20, 90, 70]], np.float32), np.array([0.2, 0.9])
    assert np.array_equal(refine(frames[0].image, boxes, confidence),
                          refine_boxes(net, frames[0].image, boxes, confidence))
    passed = []
    real_propose = ml.propose
    monkeypatch.setattr(ml, "propose",
                        lambda *args, **kwargs: passed.append(kwargs["refiner"]) or real_propose(*args, **kwargs))
    proposals_refresh(frame_id=labelled_frames(tenant.project, 1, seed=9, complete=False)[0].pk, force=True)
    assert len(passed) == 1 and passed[0] is not None


def test_the_split_is_stable_as_frames_arrive(tenant):
    frames = labelled_frames(tenant.project, 12)
    train, validation = runs.training_split(project_id=tenant.project.pk)
    more = labelled_frames(tenant.project, 12, seed=1)
    train_after, validation_after = runs.training_split(project_id=tenant.project.pk)
    old = {frame.pk for frame in frames}
    assert set(train) == old & set(train_after) and set(validation) == old & set(validation_after)
    assert set(train_after) | set(validation_after) == old | {frame.pk for frame in more}


def test_incomplete_frames_do_not_train_the_detector(tenant):
    labelled_frames(tenant.project, 16)
    incomplete = labelled_frames(tenant.project, 6, seed=3, complete=False)
    run = trained(tenant)
    used = set(run.train_frame_ids) | set(run.val_frame_ids)
    assert used and not used & {frame.pk for frame in incomplete}


def test_a_model_worse_than_the_current_one_stays_a_candidate_until_an_admin_promotes_it(tenant, monkeypatch):
    labelled_frames(tenant.project, 16)
    first = trained(tenant)
    evaluate, evaluate_file = ml.evaluate_detector, ml.evaluate_detector_file

    def current_scores(path, frames):
        with monkeypatch.context() as patch:
            patch.setattr(ml, "evaluate_detector", evaluate)
            return evaluate_file(path, frames)

    def candidate_scores_lower(detector, frames):
        # The new model (in memory) scores a little below the current one on the same frames.
        return replace(evaluate(detector, frames), map50=first.metrics["map50"] - 0.01)

    monkeypatch.setattr(ml, "evaluate_detector_file", current_scores)
    monkeypatch.setattr(ml, "evaluate_detector", candidate_scores_lower)
    second = trained(tenant)

    assert second.state == RunState.SUCCEEDED and second.parent == first
    assert second.hyperparameters["fine_tuned_from"] == 1
    assert "worse than the current" in second.decision and second.promoted_at is None
    assert second.metrics["current"]["run"] == 1
    assert ProjectLearning.objects.get(project=tenant.project).current_run == first

    response = tenant.client("admin").post(api_path(tenant, f"training-runs/{second.pk}/promote"))
    assert response.status_code == 200 and response.json()["is_current"]
    assert ProjectLearning.objects.get(project=tenant.project).current_run == second
    # ... and back: a rollback is promoting the older version.
    response = tenant.client("admin").post(api_path(tenant, f"training-runs/{first.pk}/promote"))
    assert response.status_code == 200
    assert ProjectLearning.objects.get(project=tenant.project).current_run == first


def test_the_promoted_detector_proposes_on_frames_still_to_label(tenant, settings, monkeypatch):
    settings.LABELLER = {**settings.LABELLER, "TRAINING_EPOCHS": 15}  # enough to find the shapes
    labelled_frames(tenant.project, 16)
    trained(tenant)
    unlabelled = labelled_frames(tenant.project, 1, seed=9, complete=False)[0]
    truths = Annotation.objects.filter(frame=unlabelled)
    truth_boxes = np.array(list(truths.values_list("x1", "y1", "x2", "y2")), np.float32)
    truths.delete()
    # The real detector, watched: which source's box survives where it and the pixels'
    # candidates find the same object depends on the run's weights, so the proposals are
    # checked for the objects and the detector for having found them itself.
    detected = []
    promoted = proposing._project_detector

    def watched(project_id):
        detector = promoted(project_id)

        def detect(rgb):
            boxes, scores, labels = detector(rgb)
            detected.append(boxes[scores >= 0.3])
            return boxes, scores, labels
        return detect if detector is not None else None
    monkeypatch.setattr(proposing, "_project_detector", watched)
    proposals_refresh(frame_id=unlabelled.pk, force=True)
    assert len(detected) == 1
    assert (iou_matrix(truth_boxes, detected[0]).max(axis=1) >= 0.5).all()
    proposed = np.array(list(ProposalOutcome.objects.filter(frame=unlabelled).values_list("box", flat=True)), np.float32)
    assert (iou_matrix(truth_boxes, proposed).max(axis=1) >= 0.5).all()


def test_too_few_complete_frames_is_a_clear_400_and_starts_nothing(tenant):
    labelled_frames(tenant.project, 3, validation=0)
    response = start(tenant)
    assert response.status_code == 400
    assert "complete frames" in response.json()["detail"]
    assert not TrainingRun.objects.exists()


def test_a_second_retrain_while_one_is_queued_returns_that_run(tenant):
    labelled_frames(tenant.project, 12)
    first = start(tenant)
    second = start(tenant)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    assert TrainingRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_retrain_clicks_start_one_run(tenant):
    labelled_frames(tenant.project, 12)
    answers = [
        getattr(answer, "status_code", answer)
        for answer in in_parallel([lambda: start(tenant)] * 4, start_together=True)
    ]
    assert sorted(answers, key=str).count(202) == 1 and len(answers) == 4 and set(answers) <= {200, 202}
    assert TrainingRun.objects.count() == 1


def test_cancelling_a_queued_run_means_it_never_trains(tenant):
    labelled_frames(tenant.project, 12)
    run_id = start(tenant).json()["id"]
    response = tenant.client("admin").post(api_path(tenant, f"training-runs/{run_id}/cancel"))
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert runs.training_run_execute(run_id=run_id) is None  # a late message does nothing
    assert TrainingRun.objects.get(pk=run_id).loss_curve == []
    again = tenant.client("admin").post(api_path(tenant, f"training-runs/{run_id}/cancel"))
    assert again.status_code == 409


def test_a_run_whose_worker_stopped_beating_is_failed_readably(tenant):
    labelled_frames(tenant.project, 12)
    run = TrainingRun.objects.get(pk=start(tenant).json()["id"])
    stale = timezone.now() - runs.STALLED_AFTER - timedelta(seconds=1)
    TrainingRun.objects.filter(pk=run.pk).update(state=RunState.RUNNING, started_at=stale, heartbeat_at=stale)
    assert runs.training_runs_fail_stalled() == [run.pk]
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "no heartbeat" in run.error and run.finished_at
    # The project may train again.
    assert start(tenant).status_code == 202


def test_beat_retrains_a_project_once_enough_boxes_were_confirmed_since_its_last_run(tenant, settings):
    # The detector's rule alone: however many boxes the frames below hold, no embedding run is due.
    settings.LABELLER = {**settings.LABELLER, "EMBEDDING_RETRAIN_FACTOR": 10_000}
    labelled_frames(tenant.project, 12)
    runs.learning_settings_update(project=tenant.project, retrain_every_boxes=1000)
    first = runs.training_runs_start_due()  # the first detector does not wait for the boxes
    assert len(first) == 1 and TrainingRun.objects.get(pk=first[0]).trigger == RunTrigger.PERIODIC
    assert runs.training_runs_start_due() == []  # one at a time
    runs.training_run_execute(run_id=first[0])
    assert runs.training_runs_start_due() == []  # nothing new confirmed since

    before = _confirmed_count(tenant.project)
    labelled_frames(tenant.project, 5, seed=4)
    new = _confirmed_count(tenant.project) - before
    runs.learning_settings_update(project=tenant.project, retrain_every_boxes=new + 1)
    assert runs.training_runs_start_due() == []
    runs.learning_settings_update(project=tenant.project, retrain_every_boxes=new)
    started = runs.training_runs_start_due()
    assert len(started) == 1 and TrainingRun.objects.get(pk=started[0]).kind == "detector"
    TrainingRun.objects.filter(pk=started[0]).update(state=RunState.SUCCEEDED)
    runs.learning_settings_update(project=tenant.project, retrain_every_boxes=0)
    labelled_frames(tenant.project, 30, seed=5)
    assert runs.training_runs_start_due() == []  # off


def test_the_learning_settings_are_the_admins_to_change(tenant):
    path = api_path(tenant, f"projects/{tenant.project.pk}/learning")
    response = tenant.client("admin").patch(path, {"retrain_every_boxes": 50, "queue_order": "sequential"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["retrain_every_boxes"] == 50
    assert tenant.client("admin").patch(path, {"retrain_every_boxes": -1}, format="json").status_code == 400
    assert tenant.client("reviewer").patch(path, {"retrain_every_boxes": 1}, format="json").status_code == 403
    assert ProjectLearning.objects.get(project=tenant.project).retrain_every_boxes == 50


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_only_admins_see_and_start_runs(tenant, role):
    labelled_frames(tenant.project, 12)
    assert start(tenant, role).status_code == 403
    assert not TrainingRun.objects.exists()
    assert tenant.client(role).get(api_path(tenant, f"projects/{tenant.project.pk}/training-runs/")).status_code == 403


def test_annotators_hear_of_a_promotion_only_when_one_happened(tenant):
    stats = api_path(tenant, f"projects/{tenant.project.pk}/stats/me")
    assert tenant.client("annotator").get(stats).json()["learned"] is None
    labelled_frames(tenant.project, 16)
    trained(tenant)
    learned = tenant.client("annotator").get(stats).json()["learned"]
    assert learned["version"] == 1 and learned["notice"].startswith("The model learned")


def test_frames_are_counted_complete_only_when_a_person_said_so(tenant):
    frames = labelled_frames(tenant.project, 12)
    frames[0].status = FrameStatus.IN_PROGRESS
    frames[0].save(update_fields=["status"])
    train, validation = runs.training_split(project_id=tenant.project.pk)
    assert frames[0].pk not in train + validation


def test_after_keyframes_the_queue_offers_the_frames_the_models_are_least_sure_of(tenant):
    labelled_frames(tenant.project, 16)
    trained(tenant)
    frames = labelled_frames(tenant.project, 6, seed=5, complete=False)
    Annotation.objects.filter(frame__in=frames).delete()
    Frame.objects.filter(pk__in=[f.pk for f in frames]).update(is_keyframe=False)
    for frame in frames:
        proposals_refresh(frame_id=frame.pk, force=True)
    uncertainty = dict(FrameProposals.objects.filter(frame__in=frames).values_list("frame_id", "uncertainty"))
    assert all(0.0 <= value < 1.0 for value in uncertainty.values()) and len(set(uncertainty.values())) > 1
    peek = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/queue/peek?limit=6")).json()
    assert [f["id"] for f in peek] == sorted(uncertainty, key=lambda frame_id: (-uncertainty[frame_id], frame_id))

    # An admin may choose video order instead: the uncertainties stop counting.
    runs.learning_settings_update(project=tenant.project, queue_order=ProjectLearning.QueueOrder.SEQUENTIAL)
    for frame in frames:
        proposals_refresh(frame_id=frame.pk, force=True)
    peek = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/queue/peek?limit=6")).json()
    assert [f["id"] for f in peek] == [frame.pk for frame in frames]
    assert set(Frame.objects.filter(pk__in=[f.pk for f in frames]).values_list("priority", flat=True)) == {0.0}

    # Keyframes come first, in video order, whatever the models think of them.
    runs.learning_settings_update(project=tenant.project, queue_order=ProjectLearning.QueueOrder.UNCERTAIN_FIRST)
    keyframe = labelled_frames(tenant.project, 1, seed=8, complete=False)[0]
    proposals_refresh(frame_id=keyframe.pk, force=True)
    assert Frame.objects.get(pk=keyframe.pk).priority == 0.0


def test_a_promotion_has_the_bulk_worker_repropose_frames_nobody_holds_once(tenant, monkeypatch):
    from labeller.training import hooks
    from workers.proposals import repropose_stale

    sent = []
    monkeypatch.setattr(hooks, "enqueue", lambda name, *args: sent.append((name, args)))
    labelled_frames(tenant.project, 16)
    todo = labelled_frames(tenant.project, 3, seed=6, complete=False)
    for frame in todo:
        proposals_refresh(frame_id=frame.pk, force=True)
    trained(tenant)
    (name, (project_id, built_before)), = [call for call in sent if call[0] == hooks.REPROPOSE_STALE]
    assert project_id == tenant.project.pk
    repropose_stale(project_id, built_before)
    built = FrameProposals.objects.filter(frame__in=todo).values_list("built_at_change", flat=True)
    assert min(built) >= built_before
    assert ProposalOutcome.objects.filter(frame__in=todo, source="detector").exists()
    # People keep labelling, the clock moves on: the pass is over all the same.
    Annotation.objects.filter(frame=todo[0]).update(status=AnnotationStatus.CONFIRMED)
    assert proposing.frames_to_repropose(project_id=project_id, built_before=built_before, limit=10) == []


# --- the embedding ---------------------------------------------------------------------------


def start_embedding(tenant):
    return tenant.client("admin").post(
        api_path(tenant, f"projects/{tenant.project.pk}/training-runs/"), {"kind": "embedding"}, format="json"
    )


def test_a_promoted_embedding_is_used_once_its_index_is_built(tenant):
    labelled_frames(tenant.project, 16)
    response = start_embedding(tenant)
    assert response.status_code == 202, response.content
    run = runs.training_run_execute(run_id=response.json()["id"])
    assert run.state == RunState.SUCCEEDED and run.kind == "embedding", run.error
    assert 0.0 <= run.metrics["recall_at_1"] <= 1.0 and run.metrics["current"]["run"] is None
    assert run.metrics["val_crops"] > 0 and len(run.loss_curve) == run.epochs_total == 4
    old_key = services.index_state(tenant.project).feature_key

    if run.promoted_at is None and not ProjectLearning.objects.filter(pending_embedding_run=run).exists():
        runs.training_run_promote(run=run)  # not better on these few crops: the admin's call
    learning = ProjectLearning.objects.get(project=tenant.project)
    assert learning.pending_embedding_run == run and learning.current_embedding_run is None
    # Until the index is built, everything goes on with the feature model in use.
    assert services.index_state_peek(tenant.project).feature_key == old_key

    while not runs.embedding_index_build(run_id=run.pk):
        pass
    learning.refresh_from_db()
    assert learning.current_embedding_run == run and learning.pending_embedding_run is None
    state = services.index_state(tenant.project)
    assert state.feature_key != old_key and state.feature_key.endswith(run.artifact.rsplit("/", 1)[-1])
    confirmed = Annotation.objects.filter(project=tenant.project, status=AnnotationStatus.CONFIRMED).count()
    assert state.size == confirmed
    assert learning.notice.startswith("The model learned to tell your labels apart")
    frame = labelled_frames(tenant.project, 1, seed=7, complete=False)[0]
    suggestions, used = proposing.label_suggestions(frame=frame, box=(10, 10, 40, 40))
    assert used.feature_key == state.feature_key and suggestions
    assert runs.embedding_index_build(run_id=run.pk) is False  # a late duplicate does nothing


def test_an_embedding_run_needs_two_labels_with_boxes(tenant):
    frames = labelled_frames(tenant.project, 10)
    Annotation.objects.filter(frame__in=frames, label__name="food.dish.soup").delete()
    response = start_embedding(tenant)
    assert response.status_code == 400 and "two confirmed boxes" in response.json()["detail"]


def test_beat_retrains_the_detector_every_n_boxes_and_the_embedding_less_often(tenant, settings):
    settings.LABELLER = {**settings.LABELLER, "EMBEDDING_RETRAIN_FACTOR": 3}
    labelled_frames(tenant.project, 12)
    every = Annotation.objects.filter(project=tenant.project, status=AnnotationStatus.CONFIRMED).count()
    runs.learning_settings_update(project=tenant.project, retrain_every_boxes=every)

    def next_kind():
        started = runs.training_runs_start_due()
        if not started:
            return None
        TrainingRun.objects.filter(pk=started[0]).update(state=RunState.SUCCEEDED)  # its result does not matter here
        return TrainingRun.objects.get(pk=started[0]).kind

    def confirm_more(boxes: int):
        frame = FrameFactory(project=tenant.project)
        label = Label.objects.filter(project=tenant.project).first()
        for i in range(boxes):
            Annotation.objects.create(project=tenant.project, frame=frame, label=label, status=AnnotationStatus.CONFIRMED,
                                      x1=i, y1=0, x2=i + 5, y2=5)

    assert next_kind() == "detector"
    assert next_kind() is None  # nothing new since
    confirm_more(every)
    assert next_kind() == "detector"  # the embedding waits for 3x as many
    confirm_more(every - 1)
    assert next_kind() is None
    confirm_more(1)
    assert next_kind() == "detector"  # both due: the detector first ...
    assert next_kind() == "embedding"  # ... then the embedding
    assert next_kind() is None


def test_beat_starts_the_first_detector_as_soon_as_it_can_train_and_later_ones_every_n_boxes(tenant):
    runs.learning_settings_update(project=tenant.project, retrain_every_boxes=1000)
    labelled_frames(tenant.project, 3, complete=False)
    assert runs.training_runs_start_due() == []  # confirmed boxes, but no complete frame to learn from

    labelled_frames(tenant.project, 8, seed=1)
    assert _confirmed_count(tenant.project) < 1000
    started = runs.training_runs_start_due()
    assert [TrainingRun.objects.get(pk=pk).kind for pk in started] == ["detector"]

    TrainingRun.objects.filter(pk__in=started).update(state=RunState.SUCCEEDED)
    assert runs.training_runs_start_due() == []  # the next one waits for 1000 more boxes
    runs.learning_settings_update(project=tenant.project, retrain_every_boxes=0)
    TrainingRun.objects.all().delete()
    assert runs.training_runs_start_due() == []  # 0 turns periodic retraining off, the first run too


def _confirmed_count(project) -> int:
    return Annotation.objects.filter(project=project, status=AnnotationStatus.CONFIRMED).count()


def test_a_run_beat_failed_meanwhile_is_not_promoted_when_its_worker_finishes(tenant, monkeypatch):
    labelled_frames(tenant.project, 12)
    train = ml.train_detector

    def slow_worker(*args, **kwargs):
        result = train(*args, **kwargs)
        # The heartbeat stalled long enough for beat to give up on the run.
        runs.training_runs_fail_stalled(now=timezone.now() + runs.STALLED_AFTER + timedelta(seconds=1))
        return result

    monkeypatch.setattr(ml, "train_detector", slow_worker)
    run = trained(tenant)
    assert run.state == RunState.FAILED and "no heartbeat" in run.error
    assert not ProjectLearning.objects.filter(project=tenant.project, current_run__isnull=False).exists()
