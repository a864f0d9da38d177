FROM busybox
CMD ["echo", "a b", "c"]
