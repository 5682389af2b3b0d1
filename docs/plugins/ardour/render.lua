-- Headless Ardour (Debian's ardour7-lua, JACK backend): one stereo track with the neuralcomp LV2 plugin,
-- monitoring its input, then run NC_PLAYER (play_and_compare.py) while the session runs.
-- Environment: NC_PLUGIN_URI (the bundle's LV2 URI), NC_PLAYER (a shell command), NC_SESSION (a new folder).
AudioEngine:set_backend("JACK", "", "")
assert(AudioEngine:start(false) == 0, "Ardour could not start on the JACK server")
local s = create_session(os.getenv("NC_SESSION"), "neuralcomp", 44100)
local tracks = s:new_audio_track(2, 2, nil, 1, "nc", ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
local track = tracks:front()
local plugin = ARDOUR.LuaAPI.new_plugin(s, os.getenv("NC_PLUGIN_URI"), ARDOUR.PluginType.LV2, "")
assert(not plugin:isnil(), "Ardour did not load the plugin")
assert(track:add_processor_by_index(plugin, 0, nil, true) == 0, "Ardour did not insert the plugin")
for i = 0, 9 do print("parameter", i, ARDOUR.LuaAPI.get_processor_param(plugin, i, true)) end
track:monitoring_control():set_value(ARDOUR.MonitorChoice.MonitorInput, PBD.GroupControlDisposition.NoGroup)
ARDOUR.LuaAPI.wait_for_process_callback(10, 5)
print("player", os.execute(os.getenv("NC_PLAYER")))
close_session()
