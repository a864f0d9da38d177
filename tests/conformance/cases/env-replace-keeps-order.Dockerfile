FROM busybox
ENV Z=1 Y=2 X=3
ENV Y=new PATH=/only
ENV W=4
