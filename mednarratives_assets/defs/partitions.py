import dagster as dg

# One partition per channel (one video source); the new-video sensor adds them as folders appear.
channel_partitions = dg.DynamicPartitionsDefinition(name="channel")
