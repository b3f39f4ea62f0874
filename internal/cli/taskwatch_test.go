package cli

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// scriptedAPI answers List and Watch from scripts, so that a test can expire a watch (410), which a real API
// server does only after compaction. Other methods are not used by followTasks.
type scriptedAPI struct {
	client.WithWatch
	lists   []v1alpha1.AsyncTaskList
	watches []watchAnswer
	// watchedFrom records the resourceVersion each watch asked for.
	watchedFrom []string
}

type watchAnswer struct {
	events []watch.Event
	err    error
}

func (s *scriptedAPI) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	s.lists[0].DeepCopyInto(list.(*v1alpha1.AsyncTaskList))
	s.lists = s.lists[1:]
	return nil
}

func (s *scriptedAPI) Watch(_ context.Context, _ client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	s.watchedFrom = append(s.watchedFrom, o.Raw.ResourceVersion)
	answer := watchAnswer{}
	if len(s.watches) > 0 {
		answer, s.watches = s.watches[0], s.watches[1:]
	}
	if answer.err != nil {
		return nil, answer.err
	}
	w := watch.NewFakeWithChanSize(len(answer.events), false)
	for _, event := range answer.events {
		w.Action(event.Type, event.Object)
	}
	return w, nil
}

func taskVersion(name, resourceVersion string) *v1alpha1.AsyncTask {
	return &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: "jobs", Name: name, ResourceVersion: resourceVersion}}
}

// When the version a watch resumes from is too old (410 Gone), the tasks are listed again: each is sent as it
// is now, a task that vanished in between as deleted, and the next watch starts from the list's version.
func TestFollowTasksListsAgainWhenTheWatchExpires(t *testing.T) {
	expired := &metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired, Message: "too old resource version"}
	api := &scriptedAPI{
		watches: []watchAnswer{
			{events: []watch.Event{
				{Type: watch.Modified, Object: taskVersion("a", "2")},
				{Type: watch.Bookmark, Object: taskVersion("", "3")},
				{Type: watch.Error, Object: expired},
			}},
			{events: []watch.Event{{Type: watch.Modified, Object: taskVersion("a", "11")}}},
		},
		lists: []v1alpha1.AsyncTaskList{{ListMeta: metav1.ListMeta{ResourceVersion: "10"}, Items: []v1alpha1.AsyncTask{*taskVersion("a", "9")}}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []string
	err := followTasks(ctx, api, taskQuery{namespace: "jobs"}, "1", []string{"jobs/a", "jobs/b"}, func(ev taskEvent) {
		if ev.deleted {
			got = append(got, ev.task.Name+" deleted")
			return
		}
		got = append(got, ev.task.Name+"@"+ev.task.ResourceVersion)
		if ev.task.ResourceVersion == "11" {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("followTasks returned %v, want the context's end", err)
	}
	if diff := cmp.Diff([]string{"a@2", "a@9", "b deleted", "a@11"}, got); diff != "" {
		t.Errorf("changes sent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"1", "10"}, api.watchedFrom); diff != "" {
		t.Errorf("resourceVersions watched from (-want +got):\n%s", diff)
	}
}

// A watch refused for good (forbidden) ends the follow: the tasks cannot be read.
func TestFollowTasksStopsWhenTheTasksCannotBeRead(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: v1alpha1.GroupVersion.Group, Resource: "asynctasks"}, "", errors.New("no"))
	api := &scriptedAPI{watches: []watchAnswer{{err: forbidden}}}
	err := followTasks(context.Background(), api, taskQuery{namespace: "jobs"}, "1", nil, func(taskEvent) {})
	if !apierrors.IsForbidden(err) {
		t.Errorf("followTasks returned %v, want the forbidden error", err)
	}
}
