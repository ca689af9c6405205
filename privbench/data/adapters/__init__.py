"""Real-data adapters: one :class:`~privbench.api.adapter.DatasetAdapter` subclass per file.

``coco``, ``fddb``, ``imagenet``, ``lfw``, ``vggface2`` and ``widerface`` read published dataset
folders (:class:`~privbench.api.adapter.FolderAdapter`); ``composite`` joins several datasets.
"""
