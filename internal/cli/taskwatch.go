package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// taskQuery is which tasks a command shows or waits for: the named ones in a namespace, or those a label
// selector picks (in a namespace, or in all of them when namespace is "").
type taskQuery struct {
	namespace string
	names     []string
	selector  labels.Selector
}

// listOptions asks the API server for the query's tasks. One name is a field selector; several names are
// filtered here, as kubectl does, so that one watch serves them all.
func (q taskQuery) listOptions() *client.ListOptions {
	opts := &client.ListOptions{Namespace: q.namespace, LabelSelector: q.selector}
	if len(q.names) == 1 {
		opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", q.names[0])
	}
	return opts
}

func (q taskQuery) matches(task *v1alpha1.AsyncTask) bool {
	return len(q.names) == 0 || slices.Contains(q.names, task.Name)
}

// describe names the query in messages: `"a", "b"` or `selector app=x`, and where.
func (q taskQuery) describe() string {
	where := "in all namespaces"
	if q.namespace != "" {
		where = fmt.Sprintf("in namespace %q", q.namespace)
	}
	if len(q.names) > 0 {
		return fmt.Sprintf("%s %s", quoteNames(q.names), where)
	}
	if q.selector == nil || q.selector.Empty() {
		return where
	}
	return fmt.Sprintf("matching %q %s", q.selector.String(), where)
}

func quoteNames(names []string) string {
	quoted := make([]string, len(names))
	for i, name := range names {
		quoted[i] = fmt.Sprintf("%q", name)
	}
	return strings.Join(quoted, ", ")
}

// listTasks reads the query's tasks (named ones in the order given) and the resourceVersion to watch from.
// Names that do not exist come back in missing.
func listTasks(ctx context.Context, c client.WithWatch, q taskQuery) (tasks []v1alpha1.AsyncTask, missing []string,
	resourceVersion string, err error) {
	list := &v1alpha1.AsyncTaskList{}
	if err := c.List(ctx, list, q.listOptions()); err != nil {
		return nil, nil, "", err
	}
	if len(q.names) == 0 {
		return list.Items, nil, list.ResourceVersion, nil
	}
	for _, name := range q.names {
		i := slices.IndexFunc(list.Items, func(t v1alpha1.AsyncTask) bool { return t.Name == name })
		if i < 0 {
			missing = append(missing, name)
			continue
		}
		tasks = append(tasks, list.Items[i])
	}
	return tasks, missing, list.ResourceVersion, nil
}

// taskEvent is one change of a task the query selects: a new version of it, or its deletion.
type taskEvent struct {
	task    *v1alpha1.AsyncTask
	deleted bool
}

// followTasks sends every change of the query's tasks after resourceVersion until ctx ends, from a watch: it
// never polls. A watch the server closes (they expire after some minutes) is opened again from the last version
// seen; when that version is too old (410 Gone) the tasks are listed again, and the list is sent as changes,
// with deletions for tasks that vanished in between. Errors that may pass (the network, the server busy) are
// retried after a pause; it returns ctx's error, or why the tasks cannot be read.
func followTasks(ctx context.Context, c client.WithWatch, q taskQuery, resourceVersion string, known []string,
	send func(taskEvent)) error {
	seen := map[string]bool{}
	for _, key := range known {
		seen[key] = true
	}
	pause := time.Duration(0)
	for {
		opened := time.Now()
		err := watchFrom(ctx, c, q, &resourceVersion, seen, send)
		ranAWhile := time.Since(opened) > maxWatchPause
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if expired(err) {
			err = relist(ctx, c, q, &resourceVersion, seen, send)
		} else if err == nil && !ranAWhile {
			err = errors.New("the watch ended at once")
		}
		if err == nil {
			pause = 0
			continue
		}
		if !transient(err) {
			return err
		}
		// A watch that fails, or ends at once, is opened again after a pause that grows, so that a server or
		// proxy in trouble is not asked again and again.
		if ranAWhile {
			pause = 0
		}
		pause = min(max(2*pause, time.Second), maxWatchPause)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
	}
}

// maxWatchPause bounds the pause before a watch is opened again.
const maxWatchPause = 30 * time.Second

// transient reports whether an error may pass by itself: not one that says the tasks cannot be read (forbidden,
// unauthorized, no such resource) or that the request is wrong.
func transient(err error) bool {
	return !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) && !apierrors.IsNotFound(err) &&
		!apierrors.IsBadRequest(err) && !apierrors.IsInvalid(err) && !apierrors.IsMethodNotSupported(err)
}

// relist lists the query's tasks again after a watch expired, sends them as changes (and deletions for those
// that vanished), and moves resourceVersion to the list's.
func relist(ctx context.Context, c client.WithWatch, q taskQuery, resourceVersion *string, seen map[string]bool,
	send func(taskEvent)) error {
	tasks, _, rv, err := listTasks(ctx, c, q)
	if err != nil {
		return err
	}
	listed := map[string]bool{}
	for i := range tasks {
		listed[taskKey(&tasks[i])] = true
		seen[taskKey(&tasks[i])] = true
		send(taskEvent{task: &tasks[i]})
	}
	for key := range seen {
		if !listed[key] {
			namespace, name, _ := strings.Cut(key, "/")
			delete(seen, key)
			send(taskEvent{task: &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}},
				deleted: true})
		}
	}
	*resourceVersion = rv
	return nil
}

// watchFrom runs one watch from *resourceVersion, moving it on with each event (bookmarks included), until the
// server closes the watch (nil) or it fails.
func watchFrom(ctx context.Context, c client.WithWatch, q taskQuery, resourceVersion *string, seen map[string]bool,
	send func(taskEvent)) error {
	opts := q.listOptions()
	opts.Raw = &metav1.ListOptions{ResourceVersion: *resourceVersion, AllowWatchBookmarks: true}
	w, err := c.Watch(ctx, &v1alpha1.AsyncTaskList{}, opts)
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case event, open := <-w.ResultChan():
			if !open {
				return nil
			}
			if event.Type == watch.Error {
				return apierrors.FromObject(event.Object)
			}
			task, ok := event.Object.(*v1alpha1.AsyncTask)
			if !ok {
				return fmt.Errorf("watch sent %T, not an AsyncTask", event.Object)
			}
			*resourceVersion = task.ResourceVersion
			if event.Type == watch.Bookmark || !q.matches(task) {
				continue
			}
			deleted := event.Type == watch.Deleted
			if deleted {
				delete(seen, taskKey(task))
			} else {
				seen[taskKey(task)] = true
			}
			send(taskEvent{task: task, deleted: deleted})
		}
	}
}

// expired reports whether a watch's resourceVersion is too old to resume from: the tasks must be listed again.
func expired(err error) bool {
	var status apierrors.APIStatus
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err) ||
		(errors.As(err, &status) && status.Status().Code == http.StatusGone)
}

func taskKey(task *v1alpha1.AsyncTask) string { return task.Namespace + "/" + task.Name }
