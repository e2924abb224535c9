"""Event Grid namespaces: namespace topics, queue (pull) and push event subscriptions."""

from commgrid.grid.namespaces.models import Namespace, NamespaceSubscription, NamespaceTopic
from commgrid.grid.namespaces.service import LockResults, Namespaces, Received

__all__ = ["LockResults", "Namespace", "NamespaceSubscription", "NamespaceTopic", "Namespaces", "Received"]
